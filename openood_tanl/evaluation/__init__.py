"""Test-time evaluation on cached embeddings: benchmarks, feature extraction, protocols, tables, comparisons
(attributes are imported on first use).

Modules: ``data`` (sets and benchmarks), ``datasets`` (image benchmarks from folders, lists, specs),
``feature_cache`` and ``extraction`` (encoding images once per model), ``protocols`` (their names and checks),
``streams`` (one stream), ``traces`` (a stream batch by batch; ``trace_inside``: the engines' state against the
truth), ``parallel`` (streams in processes), ``replay`` (``replay.replay``, exported here as ``replay_streams``
since ``evaluation.replay`` is the module; ``evaluate``), ``tables`` (results and leaderboards), ``comparison``
(methods side by side in lockstep, sweeps), ``reproduce`` (the paper's numbers), ``distributed``.
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "FeatureSet": ".data", "FeatureBenchmark": ".data", "ImageList": ".data", "ImageBenchmark": ".data",
    "KNOWN_BENCHMARKS": ".datasets", "load_benchmark": ".datasets", "match_id_classes": ".datasets",
    "extract_benchmark": ".extraction", "extract_features": ".extraction", "model_key_of": ".extraction",
    "PROTOCOLS": ".protocols", "STREAM_ARGUMENTS": ".protocols", "StreamSettings": ".protocols",
    "check_protocol": ".protocols", "check_seeds": ".protocols", "check_settings": ".protocols",
    "score_stream": ".streams", "replay_streams": ".replay", "Replay": ".replay", "evaluate": ".replay",
    "run_protocol": ".replay", "write_traces": ".traces",
    "summarise": ".tables", "leaderboard_table": ".tables", "markdown_table": ".tables",
    "settings_markdown": ".tables",
    "replay_methods": ".comparison", "compare": ".comparison", "compare_methods": ".comparison", "sweep": ".comparison",
    "sweep_methods": ".comparison",
    "plot_sweep": ".comparison",
}
_SUBMODULES = ("comparison", "data", "datasets", "distributed", "extraction", "feature_cache", "parallel", "protocols",
               "replay", "reproduce", "streams", "tables", "trace_inside", "traces")
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)

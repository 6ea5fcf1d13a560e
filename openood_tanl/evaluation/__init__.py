"""Test-time evaluation on cached embeddings: benchmarks, feature extraction, protocols, tables, comparisons
(attributes are imported on first use).

Modules: ``data`` (sets and benchmarks), ``datasets`` (image benchmarks from folders, lists, specs),
``feature_cache`` and ``extraction`` (encoding images once per model), ``protocols`` (their names and checks),
``streams`` (one stream), ``parallel`` (streams in processes), ``replay`` (``evaluate``), ``tables`` (results and
leaderboards), ``comparison`` (methods side by side, sweeps), ``reproduce`` (the paper's numbers), ``distributed``.
"""
from .._lazy import lazy_exports

_EXPORTS = {
    "FeatureSet": ".data", "FeatureBenchmark": ".data", "ImageList": ".data", "ImageBenchmark": ".data",
    "KNOWN_BENCHMARKS": ".datasets", "load_benchmark": ".datasets", "match_id_classes": ".datasets",
    "extract_benchmark": ".extraction", "extract_features": ".extraction", "model_key_of": ".extraction",
    "PROTOCOLS": ".protocols", "check_protocol": ".protocols", "check_seeds": ".protocols",
    "score_stream": ".streams", "evaluate": ".replay", "run_protocol": ".replay",
    "summarise": ".tables", "leaderboard_table": ".tables", "markdown_table": ".tables",
    "compare_methods": ".comparison", "sweep": ".comparison", "plot_sweep": ".comparison",
}
_SUBMODULES = ("comparison", "data", "datasets", "distributed", "extraction", "feature_cache", "parallel", "protocols",
               "replay", "reproduce", "streams", "tables")
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)

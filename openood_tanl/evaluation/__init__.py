"""Test-time evaluation: protocols on cached embeddings, feature extraction, leaderboards and sweeps (attributes are
imported on first use)."""
from .._lazy import lazy_exports

_EXPORTS = {
    "EVALUATORS": ".openood_evaluators", "register_evaluators": ".openood_evaluators",
    "KNOWN_BENCHMARKS": ".benchmarks", "ImageBenchmark": ".benchmarks", "ImageList": ".benchmarks",
    "load_benchmark": ".benchmarks", "match_id_classes": ".benchmarks",
    "extract_benchmark": ".features", "extract_features": ".features", "model_key_of": ".features",
    "compare_methods": ".leaderboard", "leaderboard_table": ".leaderboard", "markdown_table": ".leaderboard",
    "plot_sweep": ".leaderboard", "sweep": ".leaderboard",
    "PROTOCOLS": ".protocols", "FeatureBenchmark": ".protocols", "FeatureSet": ".protocols", "evaluate": ".protocols",
    "run_protocol": ".protocols", "score_stream": ".protocols", "summarise": ".protocols",
}
_SUBMODULES = ("benchmarks", "distributed", "features", "leaderboard", "openood_evaluators", "protocol_names",
               "protocols", "reproduce")
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)

"""Test-time evaluation: protocols on cached embeddings, feature extraction, leaderboards and sweeps."""
from .benchmarks import KNOWN_BENCHMARKS, ImageBenchmark, ImageList, load_benchmark
from .features import extract_benchmark, extract_features, model_key_of
from .openood_evaluators import EVALUATORS, register_evaluators
from .leaderboard import compare_methods, leaderboard_table, markdown_table, plot_sweep, sweep
from .protocols import PROTOCOLS, FeatureBenchmark, FeatureSet, evaluate, run_protocol, score_stream, summarise

__all__ = ["EVALUATORS", "register_evaluators", "KNOWN_BENCHMARKS", "ImageBenchmark", "ImageList", "load_benchmark", "extract_benchmark",
           "extract_features", "model_key_of", "compare_methods", "leaderboard_table", "markdown_table", "plot_sweep", "sweep", "PROTOCOLS", "FeatureBenchmark", "FeatureSet", "evaluate", "run_protocol", "score_stream", "summarise"]

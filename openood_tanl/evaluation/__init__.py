"""Test-time evaluation: protocols on cached embeddings, feature extraction, leaderboards and sweeps."""
from .protocols import PROTOCOLS, FeatureBenchmark, FeatureSet, evaluate, run_protocol, score_stream, summarise

__all__ = ["PROTOCOLS", "FeatureBenchmark", "FeatureSet", "evaluate", "run_protocol", "score_stream", "summarise"]

"""TANL on embeddings with the Python API (no OpenOOD, no CLIP needed).

Replace the synthetic bank and stream by your own L2-normalised CLIP embeddings: ID class texts [C, D], corpus
words [N, D], noise-image features [K, D], and test images [S, D] arriving in batches.

    python examples/python_api.py
"""
import torch

from openood_tanl import TANL
from openood_tanl.metrics import ood_metrics
from openood_tanl.synthetic import make_bank, make_stream

bank = make_bank(num_classes=100, corpus_size=10000, dim=256, seed=0)  # synthetic stand-in for a CLIP text bank
features, is_id, labels = make_stream(bank, num_id=3000, num_ood=1000, signal=0.4, seed=1)

engine = TANL(bank.id_text, bank.corpus_text, bank.noise_features, logit_scale=100.0,
              num_negatives=1000, memory_length=300, gap=0.2, alpha=0.95, score_step=1)  # the paper's values
preds, scores = [], []
for batch in features.split(256):  # a test stream: the engine learns from each batch after scoring it
    pred, score = engine.step(batch)  # score: higher = more in-distribution
    preds.append(pred)
    scores.append(score)
    print(f"threshold {engine.threshold:.2f}, memories (ID, OOD) {engine.memory_fill}, "
          f"strongest negatives {engine.selected[:3].tolist()}")

metrics = ood_metrics(torch.cat(scores).numpy(), is_id.numpy(), torch.cat(preds).numpy(), labels.numpy())
print({name: round(value, 2) for name, value in metrics.items()})
engine.reset()  # before the next test stream

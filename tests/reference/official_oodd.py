"""The official OODD code's dictionary, scores and NegLabel selection, transcribed literally (a ``queue.PriorityQueue``
of per-row items, one insertion at a time, numpy float32 subtraction), to pin the fast engines against.

From github.com/zxk1212/OODD at edbb1a3: ``NegLabel/tools/ood_test.py`` L260-304 and ``MCM/eval_ood_detection.py``
L168-223 (the loop), ``NegLabel/mmcls/models/classifiers/multi_modal.py`` L140-160 (the selection),
``MCM/utils/detection_util.py`` L311-337 (the MCM base), written here in our own words.
"""
from queue import PriorityQueue

import numpy as np
import torch

from reference.official_neglabel import official_neglabel_score


class _Held:
    """One queue entry; the queue's "smallest" item is the one with the HIGHEST score, so ``get`` evicts it."""

    def __init__(self, score, feature):
        self.score, self.feature = score, feature

    def __lt__(self, other):
        return float(self.score) > float(other.score)


def official_oodd_scores(features: np.ndarray, base_scores: np.ndarray, batch_size: int, queue_size: int = 2048,
                         k: int = 5) -> list[np.ndarray]:
    """The official loop over a stream already in order: per batch, every row goes into the queue (the highest
    score leaves whenever it holds more than ``queue_size``), then each row's score is its base score minus the
    k-th largest of the held features' cosines to it (``torch.kthvalue`` over the [held, batch] product at rank
    held - k + 1). Returns the per-batch float32 scores."""
    queue = PriorityQueue()
    out = []
    for start in range(0, features.shape[0], batch_size):
        batch, base = features[start:start + batch_size], base_scores[start:start + batch_size]
        for row in range(base.shape[0]):
            queue.put(_Held(base[row], batch[row]))
            if queue.qsize() > queue_size:
                queue.get()
        held = torch.tensor(np.array([item.feature for item in list(queue.queue)]))
        products = held @ torch.tensor(batch).T
        kth = torch.kthvalue(products, products.size(0) - k + 1, dim=0)[0].numpy()
        out.append(base - kth)
    return out


def official_oodd_neglabel_base(features: np.ndarray, id_text: torch.Tensor, negative_text: torch.Tensor,
                                num_groups: int, scale: float = 100.0) -> np.ndarray:
    """The NegLabel base of ``ood_test.py``: the grouped score of ``100 * cos`` (t = 1), float32 (``scale`` other
    than the official 100 only to keep test scores off float32's saturation at 1)."""
    image = torch.tensor(features)
    logits = torch.cat([scale * image @ id_text.T, scale * image @ negative_text.T], dim=1)
    return official_neglabel_score(logits, id_text.shape[0], num_groups).numpy()


def official_oodd_mcm_base(features: np.ndarray, id_text: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """The MCM base of ``eval_ood_detection.py``: the max softmax of the raw cosines over T (the official code
    stores its negative and negates it back before the queue)."""
    cosines = torch.tensor(features) @ id_text.T
    stored = -np.max(torch.softmax(cosines / temperature, dim=1).numpy(), axis=1)
    return -stored


def official_oodd_selection(corpus_text: torch.Tensor, id_text: torch.Tensor, noun_count: int, fraction: float = 0.15,
                            percentile: float = 0.95, chunk: int = 1000) -> list[int]:
    """OODD's copy of the NegLabel selection on a corpus laid out [nouns | adjectives]: chunks of 1000 words, each
    word's ``torch.quantile`` of its cosines to the ID texts, an ascending ``argsort`` per kind, the first
    ``int(len * fraction)`` of each; nouns then adjectives (indices into the corpus)."""
    closeness = []
    for start in range(0, corpus_text.shape[0], chunk):
        closeness.append(torch.quantile((corpus_text[start:start + chunk] @ id_text.T).float(), q=percentile, dim=-1))
    closeness = torch.cat(closeness)
    nouns, adjectives = closeness[:noun_count], closeness[noun_count:]
    noun_order, adjective_order = torch.argsort(nouns), torch.argsort(adjectives)
    keep_nouns = noun_order[: int(len(noun_order) * fraction)].tolist()
    keep_adjectives = adjective_order[: int(len(adjective_order) * fraction)].tolist()
    return keep_nouns + [noun_count + index for index in keep_adjectives]

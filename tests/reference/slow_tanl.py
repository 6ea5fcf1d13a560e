"""A slow, literal TANL written straight from the specification, to pin the fast engine in tests.

Every piece is the obvious loop: queues are Python lists of rows, means are recomputed, the score is a loop of
softmaxes, the threshold a loop over grid values with ``torch.var``. Float64 throughout except where the
specification says float32.
"""
from __future__ import annotations

import torch


def slow_prefix_score(logits: torch.Tensor, num_classes: int, score_step: int) -> torch.Tensor:
    """Mean over prefixes n = k, 2k, ... (capped at M) of the ID share of softmax([ID | first n negatives])."""
    logits = logits.double()
    num_negatives = logits.shape[1] - num_classes
    if score_step == 0:
        return logits.softmax(dim=1)[:, :num_classes].sum(1)
    shares = []
    for start in range(num_classes, num_classes + num_negatives, score_step):
        prefix = logits[:, : start + score_step]
        shares.append(prefix.softmax(dim=1)[:, :num_classes].sum(1))
    return torch.stack(shares, 1).mean(1)


def slow_threshold(scores: torch.Tensor) -> float:
    grid = torch.arange(0, 1, 0.01, dtype=torch.float32)
    values = scores.float()
    criteria = []
    for t in grid:
        high = values >= t
        low = ~high
        if high.all() or low.all():
            criteria.append(float("inf"))
            continue
        w1 = high.double().mean().item()
        var1 = values[high].double().var(unbiased=False).item()
        var0 = values[low].double().var(unbiased=False).item()
        criteria.append((1 - w1) * var0 + w1 * var1)
    best = min(criteria)
    # equality up to float64 rounding of identical partitions (same partition -> same numbers)
    ties = [i for i, c in enumerate(criteria) if c == best]
    return float(grid[ties[len(ties) // 2]])


class SlowTANL:
    def __init__(self, id_text, corpus_text, noise, logit_scale=100.0, *, num_negatives=1000, memory_length=300,
                 gap=0.2, alpha=0.95, score_step=1, score_memory_length=20000, seed=0):
        self.id_text, self.corpus, self.noise = id_text.float(), corpus_text.float(), noise.float()
        self.text = torch.cat([self.id_text, self.corpus])
        self.scale, self.M, self.L = logit_scale, num_negatives, memory_length
        self.gap, self.alpha, self.k, self.S, self.seed = gap, alpha, score_step, score_memory_length, seed
        self.C = id_text.shape[0]
        self.reset()

    def logits(self, x):
        return (self.scale * x.float()) @ self.text.T

    def acts(self, x):
        return torch.softmax(self.logits(x), dim=1)[:, self.C:]

    def score(self, x, selected):
        cols = torch.cat([torch.arange(self.C), self.C + selected])
        return slow_prefix_score(self.logits(x)[:, cols], self.C, self.k)

    def select(self, pref):
        return torch.sort(pref, descending=True).indices[: self.M]

    def reset(self):
        g = torch.Generator().manual_seed(self.seed)
        id_perm = torch.randperm(self.C, generator=g)
        noise_perm = torch.randperm(self.noise.shape[0], generator=g)
        self.id_queue = list(self.acts(self.id_text)[id_perm])[-self.L:]
        self.ood_queue = list(self.acts(self.noise)[noise_perm])[-self.L:]
        self.selected = self.select(torch.stack(self.ood_queue).mean(0) - torch.stack(self.id_queue).mean(0))
        self.memory = list(self.score(torch.cat([self.id_text, self.noise]), self.selected).float())[-self.S:]
        self.threshold = float("nan")

    def step(self, x):
        x = x.float()
        logits = self.logits(x)
        pred = logits[:, : self.C].argmax(1)
        id_mean = torch.stack(self.id_queue).mean(0)
        ood_mean = torch.stack(self.ood_queue).mean(0)
        s0 = self.score(x, self.select(ood_mean - id_mean)).float()
        self.memory = (self.memory + list(s0))[-self.S:]
        t = slow_threshold(torch.stack(self.memory))
        self.threshold = t
        is_id = s0 > torch.tensor(t + self.gap * (1 - t), dtype=torch.float32)
        is_ood = s0 < torch.tensor(t - self.gap * t, dtype=torch.float32)
        acts = self.acts(x)
        blend_id = self.alpha * id_mean + (1 - self.alpha) * acts[is_id].mean(0) if is_id.any() else id_mean
        blend_ood = self.alpha * ood_mean + (1 - self.alpha) * acts[is_ood].mean(0) if is_ood.any() else ood_mean
        self.selected = self.select(blend_ood - blend_id)
        score = self.score(x, self.selected).float()
        self.id_queue = (self.id_queue + list(acts[is_id]))[-self.L:]
        self.ood_queue = (self.ood_queue + list(acts[is_ood]))[-self.L:]
        return pred, score

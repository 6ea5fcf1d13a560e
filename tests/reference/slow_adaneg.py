"""AdaNeg written the obvious way, in float64, one image at a time: the reference the fast engine is pinned to."""
import torch
import torch.nn.functional as F


class SlowAdaNeg:
    """AdaNeg written the obvious way, in float64: one image at a time into a slot memory.

    Proxy p owns ``1 + L`` slots: its text in slot 0, images in slots 1, 2, ... The fill index starts at 1 and
    a proxy counts as full when the index reaches L (so slot L is never written). When full, a newcomer replaces
    the slot of highest entropy (the last such slot) if its entropy is strictly lower than some slot's.
    """

    def __init__(self, id_text, negative_text, logit_scale=100.0, *, threshold=0.5, gap=0.5, memory_length=10,
                 mix_weight=0.1, num_groups=5, shuffle_groups=True, sample_adaptive=False, sharpness=5.0,
                 score_mode="combine"):
        self.C = id_text.shape[0]
        self.text = torch.cat([id_text, negative_text]).double()
        self.scale = logit_scale
        self.threshold, self.gap, self.L = threshold, gap, memory_length
        self.mix, self.beta, self.mode, self.adaptive = mix_weight, sharpness, score_mode, sample_adaptive
        M = negative_text.shape[0]
        kept = M - M % num_groups
        if shuffle_groups:
            with torch.random.fork_rng():  # the official way: reseed the global RNG with 0, then randperm
                torch.manual_seed(0)
                order = torch.randperm(kept)
        else:
            order = torch.arange(kept)
        self.groups = [self.C + g for g in order.view(num_groups, -1)]
        self.reset()

    def reset(self):
        P, D = self.text.shape
        self.slots = torch.zeros(P, 1 + self.L, D, dtype=torch.float64)
        self.slots[:, 0] = self.text
        self.entropy = torch.zeros(P, 1 + self.L, dtype=torch.float64)
        self.index = [1] * P

    def grouped_score(self, logits):  # [P] -> float
        scores = []
        for group in self.groups:
            probs = torch.softmax(torch.cat([logits[: self.C], logits[group]]), dim=0)
            scores.append(float(probs[: self.C].sum()))
        return sum(scores) / len(scores)

    def offer(self, p, feature, entropy):
        if self.index[p] == self.L:
            if bool((entropy < self.entropy[p]).any()):
                worst = max(range(1 + self.L), key=lambda k: (float(self.entropy[p, k]), k))
                self.slots[p, worst] = feature
                self.entropy[p, worst] = entropy
        else:
            self.slots[p, self.index[p]] = feature
            self.entropy[p, self.index[p]] = entropy
            self.index[p] += 1

    def step(self, features):
        x = features.double()
        text_logits = self.scale * x @ self.text.T
        text_scores = [self.grouped_score(row) for row in text_logits]
        for i, row in enumerate(text_logits):
            if text_scores[i] > self.threshold + self.gap * (1 - self.threshold):
                part, offset = row[: self.C], 0
            elif text_scores[i] < self.threshold - self.gap * self.threshold:
                part, offset = row[self.C:], self.C
            else:
                continue
            # entropy in float32 as in the official pipeline: there log(p + 1e-8) <= 0 for every p, so the entropy
            # is >= 0 and never undercuts the 0 of the text slot or of the never-written last slot (in float64
            # log(1 + 1e-8) > 0 and a peaked softmax would get a negative entropy)
            probs = torch.softmax(part.float(), dim=0)
            self.offer(offset + int(part.argmax()), x[i], float(-(probs * torch.log(probs + 1e-8)).sum()))
        preds, scores = [], []
        for i in range(len(x)):
            if self.adaptive:
                weights = torch.exp(-self.beta * (1 - self.slots @ x[i]))  # [P, 1 + L]
                proxies = (weights[:, :, None] * self.slots).sum(1)
            else:
                proxies = self.slots.sum(1)
            memory_logits = self.scale * F.normalize(proxies, dim=1) @ x[i]
            memory_score = self.grouped_score(memory_logits)
            text_score = text_scores[i]
            score = {"combine": memory_score + self.mix * text_score, "adaonly": memory_score,
                     "vanillaonly": text_score, "multiply": memory_score * text_score}[self.mode]
            probs = torch.softmax(text_logits[i], 0) + self.mix * torch.softmax(memory_logits, 0)
            preds.append(int(probs[: self.C].argmax()))
            scores.append(score)
        return torch.tensor(preds), torch.tensor(scores, dtype=torch.float64)

    def memory_of(self, p):
        return self.slots[p, 1: self.index[p]]

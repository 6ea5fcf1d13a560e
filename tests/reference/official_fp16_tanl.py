"""The official TANL postprocessor's float16 run, transcribed step by step: tensors laid out as there ([D, C + N]
texts), the global RNG, growing queues cut to their last L rows, the threshold grid searched with one variance per
candidate, one softmax per prefix. The engine ``OfficialFP16TANL`` is pinned to it."""
import torch


def prefix_score(output: torch.Tensor, num_classes: int, num_negatives: int, step: int) -> torch.Tensor:
    """One softmax per growing prefix of the negatives, its ID part summed, the prefixes averaged (dtype kept)."""
    if step == 0:
        return output.softmax(dim=-1)[:, :num_classes].sum(dim=-1)
    shares = []
    for end in range(num_classes, num_classes + num_negatives, step):
        shares.append(output[:, : end + step].softmax(dim=-1)[:, :num_classes].sum(dim=-1))
    return torch.stack(shares, dim=-1).mean(dim=-1)


def grid_threshold(scores: torch.Tensor) -> float:
    """The candidate of 0.00 .. 0.99 with the least within-class variance; the middle one among equal minima."""
    grid = torch.arange(0, 1, 0.01)
    criteria = []
    for candidate in grid:
        above = scores >= candidate
        share_above = above.float().sum() / scores.numel()
        if share_above == 0 or share_above == 1:
            criteria.append(torch.tensor(float("inf")))
            continue
        high, low = scores[above], scores[~above]
        criteria.append((1 - share_above) * low.var(unbiased=False) + share_above * high.var(unbiased=False))
    criteria = torch.stack(criteria)
    best = torch.where(criteria == criteria.min())[0]
    return grid[best[len(best) // 2]].item()


def keep_last(queue: torch.Tensor, length: int) -> torch.Tensor:
    return queue[-length:] if queue.shape[0] > length else queue


class OfficialFP16TANLTranscription:
    """The official run on float16 tensors: ``id_text`` [C, D], ``corpus_text`` [N, D], ``noise`` [K, D] (float16),
    ``logit_scale`` a float32 0-d tensor. ``postprocess(image_features float16) -> (pred, conf float16)``."""

    def __init__(self, id_text, corpus_text, noise, logit_scale, *, beta=1000, memleng=300, gap=0.2, alpha=0.95,
                 gamma=1, seed=0):
        self.C = id_text.shape[0]
        self.texts = torch.cat([id_text, corpus_text]).t().contiguous()  # [D, C + N]
        self.noise, self.scale = noise, logit_scale
        self.beta, self.L, self.gap, self.alpha, self.gamma, self.seed = beta, memleng, gap, alpha, gamma, seed
        self.threshold = None
        self.reset()

    def selected_texts(self, preference):
        order = preference.sort(descending=True)[1][: self.beta]
        return torch.cat([self.texts[:, : self.C], self.texts[:, self.C:].t()[order].t()], dim=-1), order

    def reset(self):
        C = self.C
        torch.manual_seed(self.seed)
        from_id = torch.softmax(self.scale * self.texts[:, :C].t() @ self.texts, dim=1)
        from_id = from_id[torch.randperm(from_id.size(0))][:, C:].float()
        self.id_queue = keep_last(from_id, self.L)
        from_noise = torch.softmax(self.scale * self.noise @ self.texts, dim=1)
        from_noise = from_noise[torch.randperm(from_noise.size(0))][:, C:].float()
        self.ood_queue = keep_last(from_noise, self.L)
        selected, self.order = self.selected_texts(self.ood_queue.mean(0) - self.id_queue.mean(0))
        conf_id = prefix_score(self.scale * self.texts[:, :C].t() @ selected, C, self.beta, self.gamma)
        conf_noise = prefix_score(self.scale * self.noise @ selected, C, self.beta, self.gamma)
        self.score_queue = torch.cat((conf_id, conf_noise), dim=0)

    def postprocess(self, image_features):
        C = self.C
        output_all = self.scale * image_features @ self.texts
        pred = torch.max(output_all[:, :C], dim=1)[1]
        activations = torch.softmax(output_all.float(), dim=1)
        selected, _ = self.selected_texts(self.ood_queue.mean(0) - self.id_queue.mean(0))
        in_domain = prefix_score((self.scale * image_features @ selected).float(), C, self.beta, self.gamma)
        self.score_queue = keep_last(torch.cat((self.score_queue, in_domain), dim=0), 20000)  # float32 from here
        self.threshold = t = grid_threshold(self.score_queue)
        confident_id = in_domain > (t + self.gap * (1 - t))
        confident_ood = in_domain < (t - self.gap * t)
        id_mean, ood_mean = self.id_queue.mean(0), self.ood_queue.mean(0)
        if confident_id.any():
            id_mean = self.alpha * id_mean + (1 - self.alpha) * activations[confident_id][:, C:].mean(0)
        if confident_ood.any():
            ood_mean = self.alpha * ood_mean + (1 - self.alpha) * activations[confident_ood][:, C:].mean(0)
        selected, self.order = self.selected_texts(ood_mean - id_mean)
        conf = prefix_score(self.scale * image_features @ selected, C, self.beta, self.gamma)
        if confident_id.any():
            self.id_queue = keep_last(torch.cat((self.id_queue, activations[confident_id][:, C:])), self.L)
        if confident_ood.any():
            self.ood_queue = keep_last(torch.cat((self.ood_queue, activations[confident_ood][:, C:])), self.L)
        return pred, conf

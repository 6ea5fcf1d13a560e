"""CSP's official selection and score (``mmcls/models/classifiers/multi_modal.py`` and ``mmcls/models/ood/
clip_ood.py`` of MengyuanChen21/NeurIPS2024-CSP at 3a7bdab), written out literally in our own words: row blocks of
1,000 candidates, Python lists and loops, one softmax per group, the global RNG; to pin the fast engine against."""
import torch


def official_csp_selection(cos_rows, noun_count: int, neg_topk: float = 0.15, pencentile: float = 0.95) -> list[int]:
    """Corpus indices CSP keeps, from the [W, C] cosines of its candidates (the first ``noun_count`` rows nouns, the
    rest adjectives): per block of 1,000 rows the ``pencentile`` quantile of each row, replaced by 1.0 where the
    row's largest cosine is above 0.95; each kind ranked on its own, lowest first, ``int(count * neg_topk)`` kept;
    the nouns' picks, then the adjectives'."""
    closeness = []
    for start in range(0, cos_rows.shape[0], 1000):
        block = cos_rows[start:start + 1000].float()
        values = torch.quantile(block, q=pencentile, dim=-1)
        for row in range(block.shape[0]):
            closeness.append(1.0 if float(block[row].max()) > 0.95 else float(values[row]))
    picks = []
    for first, last in ((0, noun_count), (noun_count, len(closeness))):
        ranked = sorted(range(first, last), key=lambda index: closeness[index])  # Python's sort is stable
        picks += ranked[:int((last - first) * neg_topk)]
    return picks


def official_csp_score(id_logits, negative_logits, ngroup: int = 100, t: float = 1.0):
    """The grouped score on [B, C] ID and [B, M] negative logits (100 x cosine): the last M % ngroup negatives cut
    off, a permutation of the rest drawn after ``manual_seed(0)`` (officially on the CUDA generator; here the CPU
    one, as our engine), cut into ``ngroup`` groups; per group the ID part of the softmax of [ID | group] / t,
    summed; the groups averaged."""
    extra = negative_logits.shape[1] % ngroup
    kept = negative_logits[:, :negative_logits.shape[1] - extra]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        order = torch.randperm(kept.shape[1])
    groups = kept[:, order].reshape(kept.shape[0], ngroup, -1)
    shares = []
    for g in range(ngroup):
        probabilities = (torch.cat([id_logits, groups[:, g, :]], dim=1) / t).softmax(dim=1)
        shares.append(probabilities[:, :id_logits.shape[1]].sum(dim=1))
    return torch.stack(shares, dim=1).mean(dim=1)

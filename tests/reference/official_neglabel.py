"""The official NegLabel code's score and selection, transcribed literally (loops, float32, the global RNG), to pin
the fast engines against."""
import torch


def official_neglabel_score(logits: torch.Tensor, num_classes: int, num_groups: int) -> torch.Tensor:
    """The official grouped score written out literally: drop the last M % G negative columns, then permute the
    rest with the global RNG seeded 0, cut into G groups, one softmax per group (float32, as the official code)."""
    pos, neg = logits[:, :num_classes], logits[:, num_classes:]
    drop = neg.shape[1] % num_groups
    if drop > 0:
        neg = neg[:, :-drop]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        idx = torch.randperm(neg.shape[1])
    neg = neg.T[idx].T.reshape(pos.shape[0], num_groups, -1)
    scores = [torch.cat([pos, neg[:, i, :]], dim=-1).softmax(dim=-1)[:, :num_classes].sum(dim=-1)
              for i in range(num_groups)]
    return torch.stack(scores, dim=-1).mean(dim=-1)


def official_selection(cos_id: torch.Tensor, is_adjective: torch.Tensor, total: int) -> list[int]:
    """``get_selected_ood_text_list`` written out literally on [W, C] cosine similarities: adjectives then nouns,
    each the farthest first, ``int(M * (A / (A + N)))`` adjectives."""
    adjectives = is_adjective.nonzero().squeeze(1).tolist()
    nouns = (~is_adjective).nonzero().squeeze(1).tolist()
    adj_num = int(total * (len(adjectives) / (len(adjectives) + len(nouns))))
    column = int(cos_id.shape[1] * 0.95)
    chosen = []
    for rows, count in ((adjectives, adj_num), (nouns, total - adj_num)):
        closeness = cos_id[rows].sort(1).values[:, column]
        chosen += [rows[i] for i in closeness.sort(dim=0, stable=True).indices[:count].tolist()]
    return chosen

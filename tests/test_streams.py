import torch

from openood_tanl import TANL
from openood_tanl.metrics import ood_metrics
from openood_tanl.streams import evaluate_mixed, score_stream
from openood_tanl.synthetic import make_bank, make_stream


def test_evaluate_mixed_scores_a_shuffled_stream_and_splits_it_back():
    bank = make_bank(20, 800, 32, seed=0)
    id_features, _, id_labels = make_stream(bank, 300, 0, seed=1, shuffle=False)
    ood_features = make_stream(bank, 0, 100, seed=2)[0]
    engine = TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=50)
    metrics = evaluate_mixed(engine, id_features, ood_features, batch_size=32, seed=3, id_labels=id_labels)
    # the same stream by hand
    engine.reset()
    order = torch.randperm(400, generator=torch.Generator().manual_seed(3))
    pred, score = score_stream(engine, torch.cat([id_features, ood_features])[order], 32)
    by_hand, pred_by_hand = torch.empty(400), torch.empty(400, dtype=torch.long)
    by_hand[order], pred_by_hand[order] = score, pred
    is_id = torch.arange(400) < 300
    labels = torch.cat([id_labels, torch.full((100,), -1)])
    assert metrics == ood_metrics(by_hand.numpy(), is_id.numpy(), pred_by_hand.numpy(), labels.numpy())
    assert metrics["AUROC"] > 70 and metrics["ACC"] > 80
    again = evaluate_mixed(engine, id_features, ood_features, batch_size=32, seed=3, id_labels=id_labels)
    assert again == metrics  # reset inside: a replay gives the same numbers

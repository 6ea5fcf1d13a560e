import numpy as np
import pytest

from openood_tanl.metrics import ood_metrics


def test_perfect_separation():
    m = ood_metrics([0.9, 0.8, 0.7, 0.2, 0.1], [1, 1, 1, 0, 0], pred=[0, 1, 2, 0, 0], label=[0, 1, 1, -1, -1])
    assert m["AUROC"] == 100 and m["FPR@95"] == 0 and m["FPR@95(ID+)"] == 0
    assert m["ACC"] == pytest.approx(200 / 3)


def test_the_two_fpr_conventions_by_hand():
    # ID scores 1..20; OOD: 19 scores at 0 and one at 100 (an OOD image the method finds very ID-like)
    score = np.r_[np.arange(1, 21, dtype=float), np.zeros(19), 100.0]
    is_id = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    m = ood_metrics(score, is_id)
    # ID positive: keep 95% of ID (scores >= 2) -> only the OOD at 100 is kept: 1 of 20 OOD
    assert m["FPR@95(ID+)"] == pytest.approx(5.0)
    # OOD positive: catch 95% of OOD (the 19 zeros) with a threshold below every ID score -> no ID flagged
    assert m["FPR@95"] == pytest.approx(0.0)
    assert np.isnan(m["ACC"])


def test_one_sided_input_is_refused():
    with pytest.raises(ValueError, match="only ID"):
        ood_metrics([0.1, 0.2], [1, 1])

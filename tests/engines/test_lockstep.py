"""Lockstep: engines stepping on shared logits and softmax score every batch exactly as they would alone."""
import types

import pytest
import torch

from openood_tanl import TextBank, create_engine, create_lockstep
from openood_tanl.core import Lockstep
from openood_tanl.methods import METHODS, configure, list_methods
from openood_tanl.synthetic import make_stream

#: Two values other than the default for every hyperparameter of every registry method (a new hyperparameter
#: fails test_every_hyperparameter_has_sweep_values until it is given some).
SWEEP_VALUES = {
    "num_negatives": [60, 250], "percentile": [0.5, 0.9], "threshold": [0.4, 0.6], "gap": [0.1, 0.35],
    "memory_length": [5, 40], "mix_weight": [0.0, 0.3], "num_groups": [1, 3], "shuffle_groups": [False, True],
    "sample_adaptive": [True, False], "sharpness": [2.0, 8.0], "score_mode": ["adaonly", "multiply"],
    "replace_by_entropy": [False, True], "seed": [1, 7], "temperature": [0.5, 2.0], "alpha": [0.0, 0.5],
    "score_step": [2, 7], "score_memory_length": [64, 500], "negative_fraction": [0.05, 0.3],
    "queue_size": [1, 90], "k": [1, 9],
}

BATCHES = (37, 64, 1, 64, 100, 64)  # uneven, with a single-row batch


def _small(name, **hyperparameters):
    """A registry method sized for the 800-word test corpus."""
    defaults = configure(name).hyperparameters
    sized = {key: value for key, value in (("num_negatives", 200), ("num_groups", 4)) if key in defaults}
    return configure(name, **{**sized, **hyperparameters})


@pytest.fixture(scope="module")
def bank(synthetic_bank):
    raw = synthetic_bank(12, 800, 32, seed=3)
    return TextBank(raw.id_text, raw.corpus_text, raw.noise_features, 100.0)


@pytest.fixture(scope="module")
def stream(synthetic_bank):
    features, _, _ = make_stream(synthetic_bank(12, 800, 32, seed=3), 200, 130, signal=0.5, seed=4)
    return features.split(list(BATCHES))


def _alone(engine, stream):
    engine.reset()
    return [engine.step(batch) for batch in stream]


def _together(lockstep, stream):
    lockstep.reset()
    return [lockstep.step(batch) for batch in stream]


def _assert_same(alone, together, label):
    for index, ((pred, score), outputs) in enumerate(zip(alone, together)):
        got_pred, got_score = outputs[label]
        assert torch.equal(pred, got_pred), f"{label}: predictions differ at batch {index}"
        assert torch.equal(score, got_score), f"{label}: scores differ at batch {index} (not bitwise)"


def test_every_method_in_one_lockstep_equals_its_own_run(bank, stream):
    methods = {name: _small(name) for name in list_methods()}
    together = _together(create_lockstep(methods, bank), stream)
    together_again = _together(create_lockstep(methods, bank), stream)  # and reset() restarts it exactly
    for label, method in methods.items():
        alone = _alone(method.engine(bank), stream)
        _assert_same(alone, together, label)
        _assert_same(alone, together_again, label)


def test_every_hyperparameter_has_sweep_values():
    every = {key for name in METHODS for key in configure(name).hyperparameters}
    assert every <= set(SWEEP_VALUES), f"give test sweep values to {sorted(every - set(SWEEP_VALUES))}"


@pytest.mark.parametrize("name", list_methods())
def test_a_sweep_of_each_hyperparameter_in_lockstep_equals_separate_runs(bank, stream, name):
    base = _small(name)
    for argument in base.hyperparameters:
        points = {f"{argument}={value}": base.replace(**{argument: value}) for value in SWEEP_VALUES[argument]}
        points["default"] = base
        together = _together(create_lockstep(points, bank), stream)
        for label, method in points.items():
            _assert_same(_alone(method.engine(bank), stream), together, label)


def test_shared_buffers_are_only_read(bank, stream):
    """An engine's ``step_logits`` never writes the logits or softmax it is handed."""
    batch = stream[1]
    features = batch / batch.norm(dim=1, keepdim=True)
    text = torch.cat([bank.id_text_features, bank.corpus_text_features])
    logits = (100.0 * features) @ text.T
    softmax = torch.softmax(logits, 1)
    for name in list_methods():
        engine = _small(name).engine(bank)
        columns = engine.bank_columns
        given = logits if columns is None else logits.index_select(1, columns)
        before, before_softmax = given.clone(), softmax.clone()
        for _ in range(3):
            engine.step_logits(features, given, softmax if columns is None else None)
        assert torch.equal(given, before) and torch.equal(softmax, before_softmax), name


def test_the_softmax_is_computed_once_and_only_when_needed(bank, stream, monkeypatch):
    calls = []
    real = torch.softmax

    def counting(*args, **kwargs):
        if kwargs.get("out") is not None:
            calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "softmax", counting)
    two_tanl = create_lockstep({"a": _small("tanl"), "b": _small("tanl", gap=0.3)}, bank)
    two_tanl.step(stream[0])
    assert len(calls) == 1  # one softmax of the whole [B, C + N] logits for both engines
    calls.clear()
    create_lockstep({"mcm": configure("mcm"), "neglabel": _small("neglabel")}, bank).step(stream[0])
    assert not calls  # nobody needs it: never computed


def test_lockstep_refuses_engines_of_another_bank(bank, synthetic_bank):
    other_raw = synthetic_bank(5, 300, 32, seed=1)
    other = TextBank(other_raw.id_text, other_raw.corpus_text, other_raw.noise_features, 100.0)
    with pytest.raises(ValueError, match="same bank"):
        Lockstep({"a": create_engine("mcm", bank), "b": create_engine("mcm", other)}, bank.id_text_features,
                 bank.corpus_text_features, 100.0)
    with pytest.raises(AttributeError, match="bank_columns"):  # the Engine contract's attribute, read as is
        no_columns = types.SimpleNamespace(num_classes=len(bank.id_text_features), device=torch.device("cpu"))
        Lockstep({"no contract": no_columns}, bank.id_text_features, bank.corpus_text_features, 100.0)
    with pytest.raises(ValueError, match="at least one engine"):
        Lockstep({}, bank.id_text_features, bank.corpus_text_features, 100.0)


def test_tanl_engines_in_lockstep_hold_the_memories_of_their_own_runs(bank, stream):
    """A sweep's TANL engines each keep their own memories: exactly the rows and sums of each one's own run."""
    points = {f"gap={gap}": _small("tanl", gap=gap) for gap in (0.1, 0.2, 0.3)}
    lockstep = create_lockstep(points, bank)
    _together(lockstep, stream)
    for label, method in points.items():
        alone = method.engine(bank)
        _alone(alone, stream)
        for mine, theirs in zip(lockstep.engines[label].memories, alone.memories):
            assert torch.equal(mine.rows(), theirs.rows()), label
            assert torch.equal(mine.column_sum, theirs.column_sum), label


def test_engines_declare_their_bank_columns_at_construction(bank, stream):
    """The Engine contract: an engine built by hand says which bank columns it reads, as create_engine's do."""
    from openood_tanl.core import MCM, NegLabel
    from openood_tanl.methods import selected_negatives

    classes = len(bank.id_text_features)
    mcm = MCM(bank.id_text_features, 100.0)
    assert torch.equal(mcm.bank_columns, torch.arange(classes))
    assert create_engine("tanl", bank, num_negatives=50).bank_columns is None
    chosen, negatives = selected_negatives(bank, 200, 0.95)
    columns = torch.cat([torch.arange(classes), chosen + classes])
    by_hand = NegLabel(bank.id_text_features, negatives, 100.0, columns, num_groups=10)
    registry = create_engine("neglabel", bank, num_negatives=200, num_groups=10)
    assert torch.equal(by_hand.bank_columns, registry.bank_columns)
    together = _together(Lockstep({"mcm": mcm, "neglabel": by_hand}, bank.id_text_features,
                                  bank.corpus_text_features, 100.0), stream)
    _assert_same(_alone(create_engine("mcm", bank), stream), together, "mcm")
    _assert_same(_alone(registry, stream), together, "neglabel")
    for bad in (columns[:-1], columns.float(), torch.cat([columns[:-1], columns[:1]])):
        with pytest.raises(ValueError, match="bank_columns"):
            NegLabel(bank.id_text_features, negatives, 100.0, bad, num_groups=10)


def test_a_method_with_its_own_text_bank_steps_beside_the_others(bank, stream, synthetic_bank):
    """CSP's own bank (``bank.method_banks``) gets its own Lockstep; every method still equals its own run."""
    from openood_tanl.core.lockstep import Locksteps

    raw = synthetic_bank(12, 600, 32, seed=9)
    csp_bank = TextBank(raw.id_text, raw.corpus_text, raw.noise_features[:0], 100.0,
                        corpus_is_adjective=torch.arange(600) >= 450)
    both = TextBank(bank.id_text_features, bank.corpus_text_features, bank.noise_features, 100.0,
                    method_banks={"csp": csp_bank})
    methods = {name: _small(name) for name in list_methods()}
    lockstep = create_lockstep(methods, both)
    assert isinstance(lockstep, Locksteps) and list(lockstep.engines) == list(methods)
    together = _together(lockstep, stream)
    assert list(together[0]) == list(methods)
    for label, method in methods.items():
        _assert_same(_alone(method.engine(both), stream), together, label)
    alone_csp = create_engine("csp", csp_bank, num_groups=4)
    assert torch.equal(create_engine("csp", both, num_groups=4).selected, alone_csp.selected)
    _assert_same(_alone(alone_csp, stream), together, "csp")

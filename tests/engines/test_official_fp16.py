"""TANL with the official float16 numerics, pinned bitwise to a step-by-step transcription of the official run."""
import pickle

import pytest
import torch

import openood_tanl
from openood_tanl.bank import TextBank
from openood_tanl.core import TANL, OfficialFP16TANL
from openood_tanl.core.scoring import activation_aware_score, literal_activation_aware_score
from reference.official_fp16_tanl import OfficialFP16TANLTranscription

C, N, D, K = 10, 300, 32, 15


def _half_unit(rows: torch.Tensor) -> torch.Tensor:
    rows = rows.half()
    return rows / rows.norm(dim=-1, keepdim=True)  # as the official code normalises its float16 features


@pytest.fixture(scope="module")
def stream():
    generator = torch.Generator().manual_seed(0)
    id_text = _half_unit(torch.randn(C, D, generator=generator))
    corpus = _half_unit(torch.randn(N, D, generator=generator))
    noise = _half_unit(torch.randn(K, D, generator=generator) + 3)
    batches = []
    for _ in range(8):
        ids = id_text[torch.randint(0, C, (10,), generator=generator)].float()
        oods = corpus[torch.randint(0, N, (6,), generator=generator)].float()
        rows = torch.cat([ids, oods]) + 0.6 * torch.randn(16, D, generator=generator)
        batches.append(_half_unit(rows[torch.randperm(16, generator=generator)]))
    return id_text, corpus, noise, batches


@pytest.mark.parametrize("gamma", [1, 0, 3])
@pytest.mark.parametrize("alpha, gap", [(0.95, 0.2), (0.0, 0.5)])
def test_engine_is_the_official_float16_run_bitwise(stream, gamma, alpha, gap):
    id_text, corpus, noise, batches = stream
    official = OfficialFP16TANLTranscription(id_text, corpus, noise, torch.tensor(100.0), beta=50, memleng=20,
                                             gap=gap, alpha=alpha, gamma=gamma, seed=0)
    engine = OfficialFP16TANL(id_text.float(), corpus.float(), noise.float(), 100.0, num_negatives=50,
                              memory_length=20, gap=gap, alpha=alpha, score_step=gamma)
    torch.testing.assert_close(_held_scores(engine), official.score_queue.float(),
                               rtol=0, atol=0)
    confident = 0
    for batch in batches:
        official_pred, official_score = official.postprocess(batch)
        pred, score = engine.step(batch.float())
        assert official_score.dtype == torch.float16 and score.dtype == torch.float32
        assert torch.equal(pred, official_pred)
        assert torch.equal(score, official_score.float())
        assert engine.threshold == official.threshold
        assert torch.equal(engine.selected, official.order)
        confident += sum(engine.memory_fill)
    assert confident > 0  # the memories took rows: the blended selection was exercised


def test_scores_hold_float16_values_and_differ_from_the_fp32_engine(stream):
    id_text, corpus, noise, batches = stream
    half = OfficialFP16TANL(id_text.float(), corpus.float(), noise.float(), num_negatives=50, memory_length=20)
    full = TANL(id_text.float(), corpus.float(), noise.float(), num_negatives=50, memory_length=20)
    scores = torch.cat([half.step(b.float())[1] for b in batches])
    full_scores = torch.cat([full.step(b.float())[1] for b in batches])
    assert torch.equal(scores.half().float(), scores)
    assert not torch.equal(scores, full_scores)
    torch.testing.assert_close(scores, full_scores, rtol=0, atol=0.05)  # the same method, other numerics


def test_literal_score_in_float32_is_the_closed_form():
    generator = torch.Generator().manual_seed(1)
    logits = 20 + 4 * torch.randn(6, C + 40, generator=generator)
    for step in (0, 1, 7):
        torch.testing.assert_close(literal_activation_aware_score(logits, C, step),
                                   activation_aware_score(logits[:, :C], logits[:, C:], step).float(),
                                   rtol=1e-5, atol=1e-6)


def test_a_bank_of_the_official_fp16_precision_builds_it(stream):
    id_text, corpus, noise, batches = stream
    bank = TextBank(id_text.float(), corpus.float(), noise.float(), 100.0, precision="official-fp16")
    for name in ("tanl", "tanl_official"):
        assert type(openood_tanl.create_engine(name, bank, num_negatives=50)) is OfficialFP16TANL
    assert type(openood_tanl.create_engine("tanl", TextBank(id_text.float(), corpus.float(), noise.float()),
                                           num_negatives=50)) is TANL
    assert type(openood_tanl.create_engine("mcm", bank)).__name__ == "MCM"  # the baselines compute in float32


def test_in_lockstep_it_computes_its_own_float16_logits(stream):
    id_text, corpus, noise, batches = stream
    half_bank = TextBank(id_text.float(), corpus.float(), noise.float(), 100.0, precision="official-fp16")
    methods = {"half": openood_tanl.configure("tanl", num_negatives=50, memory_length=20),
               "wide": openood_tanl.configure("tanl", num_negatives=80, memory_length=20)}
    lockstep = openood_tanl.create_lockstep(methods, half_bank)
    alone = {label: method.engine(half_bank) for label, method in methods.items()}
    for batch in batches:
        together = lockstep.step(batch.float())
        for label, engine in alone.items():
            pred, score = engine.step(batch.float())
            assert torch.equal(together[label][0], pred) and torch.equal(together[label][1], score)


def test_pickles_without_its_float16_texts(stream):
    id_text, corpus, noise, batches = stream
    engine = OfficialFP16TANL(id_text.float(), corpus.float(), noise.float(), num_negatives=50, memory_length=20)
    engine.step(batches[0].float())
    state = engine.__getstate__()
    assert state["_texts_half"] is None and state["_text"] is None
    copy = pickle.loads(pickle.dumps(engine))
    for batch in batches[1:3]:
        assert torch.equal(copy.step(batch.float())[1], engine.step(batch.float())[1])


def _held_scores(engine):
    """The scores the engine's threshold search reads (its state_dict's score memory, as many as it holds)."""
    state = engine.state_dict()
    return state["score_memory"][: state["score_count"]]

"""A stream checkpointed with ``state_dict`` and resumed with ``load_state_dict`` continues bitwise, saved and
loaded as torch does (``torch.save``, ``torch.load(weights_only=True)``: no pickled objects)."""
import io

import pytest
import torch

import openood_tanl
from openood_tanl.bank import TextBank
from openood_tanl.synthetic import make_bank, make_stream


@pytest.fixture(scope="module")
def setting():
    bank = make_bank(10, 400, 32, seed=0)
    features = make_stream(bank, 300, 100, seed=1)[0]
    return bank, list(features.split(40))


@pytest.mark.parametrize("name, precision, args", [
    ("tanl", "fp32", {"num_negatives": 50, "memory_length": 30}),
    ("tanl_official", "fp32", {"num_negatives": 50, "memory_length": 30}),
    ("tanl", "official-fp16", {"num_negatives": 50, "memory_length": 30}),
    ("adaneg", "fp32", {"num_negatives": 100, "num_groups": 5, "memory_length": 6}),
    ("oodd", "fp32", {"num_groups": 5, "queue_size": 70}),
    ("mcm_oodd", "fp32", {"queue_size": 70}),
])
def test_a_resumed_stream_continues_bitwise(setting, name, precision, args):
    bank, batches = setting
    text_bank = TextBank(bank.id_text, bank.corpus_text, bank.noise_features, precision=precision)
    original = openood_tanl.create_engine(name, text_bank, **args)
    for batch in batches[:4]:
        original.step(batch)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = openood_tanl.create_engine(name, text_bank, **args).load_state_dict(
        torch.load(buffer, weights_only=True))
    for batch in batches[4:]:
        expected, got = original.step(batch), resumed.step(batch)
        assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1])
        for attribute in type(original).learned_state:
            a, b = getattr(original, attribute), getattr(resumed, attribute)
            assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b or a != a and b != b), attribute


def test_a_state_of_another_shape_is_refused(setting):
    bank, batches = setting
    small = openood_tanl.create_engine("tanl", bank_of(bank), num_negatives=50, memory_length=30)
    other = openood_tanl.create_engine("tanl", bank_of(bank), num_negatives=50, memory_length=20)
    with pytest.raises(ValueError, match="same memory_length"):
        other.load_state_dict(small.state_dict())


def bank_of(bank):
    return TextBank(bank.id_text, bank.corpus_text, bank.noise_features)

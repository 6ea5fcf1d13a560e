"""The OpenOOD postprocessors: config, state across calls, sweep hooks, inference loop. Needs OpenOOD."""
import numpy as np
import pytest
import torch

from helpers.doubles import TinyCLIPDouble
from openood_tanl import TANL

pytest.importorskip("openood.evaluation_api", reason="needs OpenOOD (pip install git+https://github.com/Jingkang50/OpenOOD)")

from openood_tanl.openood.postprocessors import (  # noqa: E402
    AdaNegPostprocessor,
    CSPPostprocessor,
    MCMPostprocessor,
    NegLabelPostprocessor,
    TANLPostprocessor,
)


@pytest.fixture(scope="module")
def net():
    return TinyCLIPDouble().eval()


def _images(n, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_default_config_is_the_shipped_yaml():
    postprocessor = TANLPostprocessor()
    assert postprocessor.args == dict(num_negatives=1000, memory_length=300, gap=0.2, alpha=0.95, score_step=1,
                                      score_memory_length=20000, seed=0)
    assert postprocessor.APS_mode is False and postprocessor.hyperparam_search_done is False
    assert postprocessor.args_dict == {"num_negatives_list": [500, 1000, 2000]}


def test_postprocess_equals_the_engine_on_the_same_features(net):
    postprocessor = TANLPostprocessor(num_negatives=50, memory_length=20)
    engine = TANL(net.id_text_features, net.corpus_text_features, net.noise_features, 100.0, num_negatives=50,
                  memory_length=20)
    for seed in range(3):
        images = _images(16, seed)
        pred, conf = postprocessor.postprocess(net, images)
        want_pred, want_conf = engine.step(net(images, return_feat=True))
        assert torch.equal(pred, want_pred) and torch.equal(conf, want_conf)


def test_state_lives_across_calls_until_reset(net):
    postprocessor = TANLPostprocessor(num_negatives=50, memory_length=20)
    images = _images(16)
    _, first = postprocessor.postprocess(net, images)
    postprocessor.postprocess(net, _images(64, 1))
    _, later = postprocessor.postprocess(net, images)
    assert not torch.equal(first, later)  # memories moved on
    postprocessor.reset()
    _, again = postprocessor.postprocess(net, images)
    assert torch.equal(first, again)
    postprocessor.postprocess(net, _images(64, 1))
    postprocessor.reset_memory()
    assert torch.equal(postprocessor.postprocess(net, images)[1], first)


def test_inference_returns_openood_arrays(net):
    postprocessor = TANLPostprocessor(num_negatives=50)
    loader = [{"data": _images(8, i), "label": torch.arange(8) % 10} for i in range(3)]
    pred, conf, label = postprocessor.inference(net, loader, progress=False)
    assert pred.shape == conf.shape == label.shape == (24,)
    assert pred.dtype.kind == "i" and label.dtype.kind == "i" and conf.dtype == np.float32
    assert np.array_equal(label, np.tile(np.arange(8) % 10, 3))


def test_set_hyperparam_restarts_with_the_new_value(net):
    postprocessor = TANLPostprocessor(num_negatives=50)
    postprocessor.postprocess(net, _images(8))
    postprocessor.set_hyperparam([np.int64(30)])
    assert postprocessor.get_hyperparam() == [30] and type(postprocessor.args["num_negatives"]) is int
    postprocessor.postprocess(net, _images(8))
    assert postprocessor.engine.num_negatives == 30 and postprocessor.engine.selected.numel() == 30
    with pytest.raises(ValueError, match="swept keys"):
        postprocessor.set_hyperparam([1, 2])


def test_engine_rebuilt_for_another_network(net):
    postprocessor = TANLPostprocessor(num_negatives=50)
    postprocessor.postprocess(net, _images(8))
    other = TinyCLIPDouble(num_classes=7, seed=3)
    pred, _ = postprocessor.postprocess(other, _images(8))
    assert postprocessor.engine.num_classes == 7 and int(pred.max()) < 7


@pytest.mark.parametrize("config, message", [
    ({"postprocessor": {"postprocessor_args": {"beta": 10}}}, "'beta' is the official name of 'num_negatives'"),
    ({"postprocessor": {"postprocessor_args": {"gama": 1}}}, "unknown key 'gama'.*Valid keys: num_negatives"),
    ({"postprocessor": {"postprocessor_sweep": {"gamma_list": [0, 1]}}}, "official name of 'score_step'"),
    ({"postprocessor": {"postprocesor_args": {}}}, "did you mean 'postprocessor_args'"),
    ({"name": "tanl"}, "'postprocessor' section"),
])
def test_bad_configs_name_the_valid_keys(config, message):
    with pytest.raises(ValueError, match=message):
        TANLPostprocessor(config)


def test_network_without_the_protocol_is_named():
    class PlainNet(torch.nn.Module):
        def forward(self, x, return_feat=False):
            return x

    with pytest.raises(TypeError, match="lacks id_text_features, corpus_text_features, noise_features"):
        TANLPostprocessor(num_negatives=5).postprocess(PlainNet(), _images(2))


def test_baseline_postprocessors_run_on_the_network():
    net = TinyCLIPDouble(num_classes=10, corpus_size=600).eval()
    images = torch.rand(6, 3, 32, 32)
    for postprocessor in (MCMPostprocessor(), NegLabelPostprocessor(num_negatives=300, num_groups=10),
                          AdaNegPostprocessor(num_negatives=300, memory_length=4)):
        pred, conf = postprocessor.postprocess(net, images)
        assert pred.shape == conf.shape == (6,) and torch.isfinite(conf).all()
    with pytest.raises(ValueError, match="'tau' is the official name of 'temperature'"):
        MCMPostprocessor(tau=2.0)
    with pytest.raises(ValueError, match="'ngroup' is the official name of 'num_groups'"):
        NegLabelPostprocessor(ngroup=2)


def test_adaneg_postprocessor_keeps_memories_until_reset():
    net = TinyCLIPDouble(num_classes=10, corpus_size=600).eval()
    postprocessor = AdaNegPostprocessor(num_negatives=300, gap=0.0)
    images = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    _, first = postprocessor.postprocess(net, images)
    _, second = postprocessor.postprocess(net, images)
    assert not torch.equal(first, second)  # the memories filled with the first batch
    postprocessor.reset()
    assert torch.equal(postprocessor.postprocess(net, images)[1], first)
    with pytest.raises(ValueError, match="'lambdaval' is the official name of 'mix_weight'"):
        AdaNegPostprocessor(lambdaval=1.0)


def test_csp_postprocessor_is_the_engine_with_the_shipped_defaults(net):
    from openood_tanl import create_engine

    postprocessor = CSPPostprocessor(num_groups=4)
    assert postprocessor.args == dict(num_groups=4, negative_fraction=0.15, percentile=0.95, seed=0)
    engine = create_engine("csp", net, num_groups=4)
    images = _images(16)
    pred, conf = postprocessor.postprocess(net, images)
    want_pred, want_conf = engine.step(net(images, return_feat=True))
    assert torch.equal(pred, want_pred) and torch.equal(conf, want_conf)

"""Bad input gets an error that names the problem and the fix: one case per item of the hardening checklist.

Each case is (what to run, exception type, a pattern naming the problem, a pattern naming the fix).
"""
import re

import numpy as np
import pytest
import torch
from PIL import Image

import openood_tanl
from openood_tanl import TANL, configure
from openood_tanl.classnames import class_names
from openood_tanl.corpus import read_word_list
from openood_tanl.evaluation.datasets import load_benchmark
from openood_tanl.metrics import ood_metrics
from openood_tanl.synthetic import make_bank
from openood_tanl.yaml_files import load_yaml

BANK = make_bank(10, 300, 16, seed=0)


def engine(**kwargs):
    return TANL(BANK.id_text, BANK.corpus_text, BANK.noise_features, num_negatives=kwargs.pop("num_negatives", 50),
                **kwargs)


def write(path, text):
    path.write_text(text)
    return path


CASES = {
    # features
    "NaN features": (lambda tmp: engine().step(torch.full((2, 16), float("nan"))), ValueError,
                     "contains NaN or Inf", "check the encoder output"),
    "wrong dimension": (lambda tmp: engine().step(torch.randn(2, 15)), ValueError,
                        "dimension 15 but the text bank has 16", "same model"),
    "empty batch": (lambda tmp: engine().step(torch.empty(0, 16)), ValueError, "empty batch", "at least one row"),
    "all-ID stream metrics": (lambda tmp: ood_metrics([0.9, 0.8], [True, True]), ValueError,
                              "got only ID", "both ID and OOD samples"),
    # hyperparameters
    "num_negatives > corpus": (lambda tmp: engine(num_negatives=301), ValueError,
                               "corpus has 300 words", r"must be in \[1, 300\]"),
    "num_negatives < 1": (lambda tmp: engine(num_negatives=0), ValueError, "got 0", r"must be in \[1, 300\]"),
    "memory_length < 1": (lambda tmp: engine(memory_length=0), ValueError, "got 0", "must be >= 1"),
    "gap > 1": (lambda tmp: engine(gap=1.2), ValueError, "got 1.2", r"gap must be in \[0, 1\]"),
    "alpha < 0": (lambda tmp: engine(alpha=-0.5), ValueError, "got -0.5", r"alpha must be in \[0, 1\]"),
    "score_step < 0": (lambda tmp: engine(score_step=-1), ValueError, "got -1", "must be >= 0"),
    "unknown config key": (lambda tmp: configure("tanl", beta=10), ValueError, "official name of 'num_negatives'",
                           "use 'num_negatives'"),
    "misspelt config key": (lambda tmp: configure("tanl", memory_lenght=10), ValueError,
                            "unknown key 'memory_lenght'", "did you mean 'memory_length'"),
    "YAML not a mapping": (lambda tmp: load_yaml(write(tmp / "list.yml", "- a\n- b\n")), ValueError,
                           "got list", "must hold a YAML mapping"),
    # corpus and classes
    "missing corpus file": (lambda tmp: read_word_list(tmp / "nope.txt"), ValueError, "not found", "Check the path"),
    "empty corpus file": (lambda tmp: read_word_list(write(tmp / "empty.txt", "\n# only a comment\n")), ValueError,
                          "is empty", "one entry per line"),
    "duplicate words": (lambda tmp: read_word_list(write(tmp / "dup.txt", "cat\ndog\ncat\n")), ValueError,
                        "'cat' on line 3", "Remove the repeated lines"),
    "empty class name": (lambda tmp: class_names(["cat", " "]), ValueError, "is empty", "give the class a name"),
    # benchmarks and images
    "unknown benchmark": (lambda tmp: load_benchmark("imagenet-21k", tmp), ValueError, "unknown benchmark",
                          "choose one of"),
    "data root without layout": (lambda tmp: load_benchmark("four-ood", tmp), FileNotFoundError,
                                 "does not have the four-OOD layout", "Expected data_root/imagenet/val"),
    "missing images": (lambda tmp: load_benchmark(_spec_with_missing_image(tmp)), FileNotFoundError,
                       "1 of 2 missing", "never dropped silently"),
    # models
    "unknown open_clip model": (lambda tmp: openood_tanl.create_network("ViT-Q-99", None, ["cat"]), ValueError,
                                "unknown open_clip model 'ViT-Q-99'", "open_clip.list_models"),
    "missing checkpoint": (lambda tmp: openood_tanl.create_network("ViT-B-16", str(tmp / "nope.pt"), ["cat"]),
                           ValueError, "neither a file nor a pretrained tag", "tags: openai"),
    "weights offline": (lambda tmp: openood_tanl.create_network("ViT-B-16", "openai", ["cat"]), RuntimeError,
                        "could not download", "pass its file path as pretrained="),
}


def _spec_with_missing_image(tmp):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp / "present.png")
    write(tmp / "ids.txt", f"{tmp / 'present.png'} 0\n{tmp / 'absent.png'} 1\n")
    write(tmp / "ood.txt", f"{tmp / 'present.png'}\n")
    return write(tmp / "spec.yml", "name: b\nid: {list: ids.txt}\nood: {far: {o: {list: ood.txt}}}\n")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_problem_and_fix(case, tmp_path):
    run, error, problem, fix = CASES[case]
    if "model" in case or "checkpoint" in case or "weights" in case:
        pytest.importorskip("open_clip")
    with pytest.raises(error) as raised:
        run(tmp_path)
    message = str(raised.value)
    assert re.search(problem, message), f"{case}: the problem is not named in: {message}"
    assert re.search(fix, message), f"{case}: the fix is not named in: {message}"


def test_batch_of_one_and_one_sided_streams_work():
    one = engine()
    pred, score = one.step(torch.nn.functional.normalize(BANK.id_text[:1] + 0.1 * BANK.image_offset, dim=1))
    assert pred.shape == score.shape == (1,)
    for rows in (torch.nn.functional.normalize(BANK.id_text[:8] + BANK.image_offset, dim=1),  # all ID-like
                 BANK.noise_features[:8]):  # all OOD-like
        stream = engine()
        for _ in range(5):
            _, score = stream.step(rows)
            assert torch.isfinite(score).all()


def test_unreadable_image_stops_extraction_with_its_path(tmp_path):
    pytest.importorskip("open_clip")
    from helpers.tiny_clip import TINY_MODEL, make_tiny_checkpoint
    from openood_tanl.evaluation.data import ImageList
    from openood_tanl.evaluation.extraction import extract_features
    from openood_tanl.networks import create_network

    checkpoint = make_tiny_checkpoint(tmp_path / "tiny")
    write(tmp_path / "words.txt", "".join(f"w{i}\n" for i in range(20)))
    net, preprocess = create_network(TINY_MODEL, str(checkpoint), ["cat", "dog"], tmp_path / "words.txt", "cpu",
                                     tmp_path / "cache")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "good.png")
    write(tmp_path / "broken.png", "this is not a PNG")
    images = ImageList("toy", [str(tmp_path / "good.png"), str(tmp_path / "broken.png")], [0, 1])
    from openood_tanl.evaluation.datasets import UnreadableImageError

    with pytest.raises(UnreadableImageError, match=r"broken\.png.*replace the file or remove it"):
        extract_features(net, preprocess, images, tmp_path / "cache", net.model_key, progress=False)

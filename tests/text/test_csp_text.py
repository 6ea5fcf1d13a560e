"""CSP's text side on generated word-list folders: the corpus rules "csp", its prompts and its text bank."""
import random
import warnings

import pytest
import torch
import torch.nn.functional as F

from openood_tanl.corpus import CSP_EXCLUDED_FILES, CorpusWarning, load_corpus, read_neglabel_folder
from openood_tanl.csp import (
    ADJECTIVE_TEMPLATES,
    NOUN_TEMPLATES,
    SUPERCLASS_PHRASES,
    average_prompts,
    csp_prompts,
    csp_text_bank,
)


def _lexicographer_folder(tmp_path):
    folder = tmp_path / "txtfiles"
    folder.mkdir()
    files = {
        "noun.artifact.txt": "school_bus\nhydraulic pump\nred\n  padded  \n",
        "adj.all.txt": "red\nlively\nschool bus\n",
        "noun.person.txt": "driver\n",  # excluded by name
        "adj.pert.txt": "oceanic\n",  # excluded by name
        "adj.ppl.txt": "broken\nlively",  # no newline at the end: readlines() keeps the line
        "noun.Tops.txt": "entity\nhydraulic_pump\n",
        "nouns.txt": "not read\n",  # the name before the first '.' is 'nouns'
        "README": "not a word list\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "noun.sub").mkdir()  # a folder named like a word list is not read
    return folder


def test_csp_corpus_rules_on_a_lexicographer_folder(tmp_path):
    folder = _lexicographer_folder(tmp_path)
    with pytest.warns(CorpusWarning, match="skipped 'README', 'noun.sub', 'nouns.txt'"):
        corpus = load_corpus(folder, ["school bus", "entity"], rules="csp")
    # sorted files: adj.all, adj.ppl, noun.Tops, noun.artifact; one exact de-duplication across all of them;
    # 'red' and 'school bus' are adjectives (read first); ID class names are kept; '_' -> ' ', stripped
    assert corpus.words == ["entity", "hydraulic pump", "padded", "red", "lively", "school bus", "broken"]
    assert corpus.kinds == ["noun"] * 3 + ["adjective"] * 4
    assert corpus.rules == "csp" and corpus.num_repeats == 4  # lively, hydraulic pump, school bus, red
    assert "driver" not in corpus.words and "oceanic" not in corpus.words and "not read" not in corpus.words
    assert set(CSP_EXCLUDED_FILES) == {"noun.person.txt", "noun.quantity.txt", "noun.group.txt", "adj.pert.txt"}


def test_csp_reading_order_is_sorted_whatever_the_listing(tmp_path, monkeypatch):
    folder = _lexicographer_folder(tmp_path)
    import os

    listing = os.listdir(folder)
    monkeypatch.setattr(os, "listdir", lambda path: list(reversed(sorted(listing))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        nouns, adjectives = read_neglabel_folder(folder, rules="csp")
    assert adjectives == ["red", "lively", "school bus", "broken", "lively"]
    assert nouns == ["entity", "hydraulic_pump", "school_bus", "hydraulic pump", "red", "  padded  "]


def test_csp_keeps_a_blank_line_as_a_word_with_a_warning(tmp_path):
    (tmp_path / "noun.a.txt").write_text("cat\n\ndog\n", encoding="utf-8")
    with pytest.warns(CorpusWarning, match="blank line"):
        corpus = load_corpus(tmp_path, rules="csp")
    assert corpus.words == ["cat", "", "dog"]


def test_csp_rules_need_a_folder(tmp_path):
    with pytest.raises(ValueError, match="rules='csp' reads a folder"):
        load_corpus("wordnet", rules="csp")
    (tmp_path / "words.txt").write_text("cat\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a folder"):
        load_corpus(tmp_path / "words.txt", rules="csp")
    with pytest.raises(ValueError, match="no word list CSP reads"):
        load_corpus(tmp_path, rules="csp")


def test_csp_prompts(tmp_path):
    folder = _lexicographer_folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        corpus = load_corpus(folder, rules="csp")
    prompts = csp_prompts(corpus, ["tench", "goldfish"], seed=3)
    assert prompts.id[1] == ["a close-up photo of the nice goldfish.", "a photo with the nice goldfish.",
                             "a good photo with the nice goldfish.", "a photo of the nice goldfish.", "goldfish",
                             "the goldfish", "the good goldfish", "the nice goldfish"]
    assert len(prompts.id) == 2 and len(prompts.nouns) == 3 and len(prompts.adjectives) == 4
    assert prompts.nouns[1] == [t.format("hydraulic pump") for t in NOUN_TEMPLATES]
    draw = random.Random(3)  # the official random.seed(seed), then one random.choice per adjective in order
    phrases = [draw.choice(SUPERCLASS_PHRASES).format(word) for word in ("red", "lively", "school bus", "broken")]
    assert prompts.adjectives == [[t.format(p) for t in ADJECTIVE_TEMPLATES] for p in phrases]
    assert prompts.adjectives[0][0] == phrases[0] and prompts.adjectives[0][1] == f"a nice photo of {phrases[0]}"
    assert len(SUPERCLASS_PHRASES) == 14 and SUPERCLASS_PHRASES[0] == "{} environment"
    assert csp_prompts(corpus, ["tench"], seed=3).adjectives == prompts.adjectives
    assert csp_prompts(corpus, ["tench"], seed=4).adjectives != prompts.adjectives or len(set(phrases)) == 1


def _toy_encoder(dim=16):
    """A deterministic 'text tower': each prompt -> a raw (unnormalised) embedding with a prompt-dependent norm."""
    def encode(prompts):
        rows = []
        for prompt in prompts:
            g = torch.Generator().manual_seed(sum(map(ord, prompt)) * 31 + len(prompt))
            rows.append(torch.randn(dim, generator=g) * (1 + len(prompt) % 5))
        return torch.stack(rows)
    return encode


def test_csp_text_bank_averages_raw_embeddings(tmp_path):
    folder = _lexicographer_folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        corpus = load_corpus(folder, rules="csp")
    encode = _toy_encoder()
    bank = csp_text_bank(corpus, ["tench", "goldfish"], encode, seed=0, logit_scale=100.0)
    prompts = csp_prompts(corpus, ["tench", "goldfish"], seed=0)
    expected_noun = F.normalize(encode(prompts.nouns[2]).mean(0), dim=0)  # raw mean, then normalised
    torch.testing.assert_close(bank.corpus_text_features[2], expected_noun, rtol=0, atol=0)
    normalised_first = F.normalize(F.normalize(encode(prompts.nouns[2]), dim=1).mean(0), dim=0)
    assert not torch.allclose(bank.corpus_text_features[2], normalised_first, atol=1e-4)
    torch.testing.assert_close(bank.corpus_text_features[3], F.normalize(encode(prompts.adjectives[0]).mean(0), dim=0))
    torch.testing.assert_close(bank.id_text_features[1], F.normalize(encode(prompts.id[1]).mean(0), dim=0))
    assert bank.corpus_is_adjective.tolist() == [False] * 3 + [True] * 4
    assert bank.noise_features.shape == (0, 16) and bank.logit_scale == 100.0
    assert bank.provenance["prompts"] == {"templates": "csp", "seed": 0, "averaging": "raw"}
    assert bank.provenance["corpus"]["rules"] == "csp"


def test_average_prompts_checks_its_encoder():
    with pytest.raises(ValueError, match="one embedding per prompt"):
        average_prompts([["a", "b"]], lambda prompts: torch.zeros(1, 4))
    with pytest.raises(ValueError, match="same number of prompts"):
        average_prompts([["a", "b"], ["c"]], lambda prompts: torch.ones(len(prompts), 4))
    assert average_prompts([], None, dim=4).shape == (0, 4)

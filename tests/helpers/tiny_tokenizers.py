"""Tiny Hugging Face tokenizers trained on a few lines, offline, saved where a config's ``hf_tokenizer_name`` points:
SigLIP's (a sentencepiece unigram in T5's layout) and SigLIP2's (a Gemma-style byte-fallback BPE)."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Sequence

#: Gemma's first ids: <pad> 0, <eos> 1, <bos> 2, <unk> 3, <mask> 4; then the 256 byte tokens of its byte fallback.
GEMMA_SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"<0x{byte:02X}>" for byte in range(256)]


def train_sentencepiece_unigram(lines: Sequence[str], vocab_size: int = 100):
    """A ``sentencepiece.SentencePieceProcessor`` trained on ``lines``: a unigram model with T5's ids (<pad> 0,
    </s> 1, <unk> 2, no <bos>), as SigLIP's c4-en vocabulary."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, model_type="unigram",
                                             vocab_size=vocab_size, hard_vocab_limit=False, pad_id=0, eos_id=1,
                                             unk_id=2, bos_id=-1, minloglevel=2)
    return sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())


def save_siglip_tokenizer(processor, folder: Path, context_length: int):
    """Save ``processor``'s model as a hub folder of SigLIP's T5 tokenizer (``spiece.model`` and a
    ``tokenizer_config.json``: ``extra_ids=0``, padded with </s>, id 1, as open_clip's SigLipTokenizer sets
    ``pad_token_id``); returns it loaded through ``AutoTokenizer`` (what open_clip does), which converts the
    sentencepiece file with protobuf (part of the ``siglip`` extra)."""
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(processor.serialized_model_proto())
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "T5Tokenizer", "extra_ids": 0, "legacy": False, "pad_token": "</s>",
        "model_max_length": context_length}))
    return AutoTokenizer.from_pretrained(folder)


def save_gemma_style_tokenizer(lines: Sequence[str], folder: Path, context_length: int, vocab_size: int = 400):
    """Train a byte-fallback BPE on ``lines`` in Gemma's layout (spaces as "▁" starting a word, no dummy prefix)
    and save it as transformers' ``GemmaTokenizer`` as open_clip's SigLipTokenizer configures it for SigLIP2 (no
    <bos>, <eos> appended, padded on the right with <pad>, id 0); returns it loaded back through ``AutoTokenizer``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoTokenizer, GemmaTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.normalizer = normalizers.Replace(" ", "▁")
    bpe.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")  # no merge across words
    bpe.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=GEMMA_SPECIAL_TOKENS,
                                                       show_progress=False))
    trained = json.loads(bpe.to_str())["model"]
    GemmaTokenizer(vocab=trained["vocab"], merges=[tuple(pair) for pair in trained["merges"]], add_bos_token=False,
                   add_eos_token=True, padding_side="right", model_max_length=context_length).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)

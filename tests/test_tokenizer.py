"""The tokenizers shards are written with: GPT-2's real BPE, a tokenizer.json file, one trained here."""

from __future__ import annotations

import pytest

from curate.core.errors import CurateError
from curate.core.tokenizer import GPT2_EOS_ID, load, prepare, token_dtype, train


def test_gpt2_ids_match_openai():
    info = prepare("gpt2")
    tokenizer = load(info.json)
    assert tokenizer.encode("Hello world", add_special_tokens=False).ids == [15496, 995]
    assert info.eos_id == GPT2_EOS_ID == 50256
    assert info.vocab_size == 50257 and info.token_dtype == "uint16"


def test_gpt2_decode_is_exact_on_real_text(jsonl_texts):
    tokenizer = load(prepare("gpt2").json)
    texts = list(jsonl_texts)
    assert len(texts) >= 20
    for text, encoding in zip(texts, tokenizer.encode_batch(texts, add_special_tokens=False), strict=True):
        assert tokenizer.decode(encoding.ids, skip_special_tokens=False) == text


def test_special_token_inside_text_is_plain_text():
    # Only curate's appended EOS may mark a document end; a literal "<|endoftext|>" stays text.
    tokenizer = load(prepare("gpt2").json)
    ids = tokenizer.encode("a<|endoftext|>b", add_special_tokens=False).ids
    assert GPT2_EOS_ID not in ids
    assert tokenizer.decode(ids, skip_special_tokens=False) == "a<|endoftext|>b"


def test_tokenizer_json_path_round_trips(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(prepare("gpt2").json)
    info = prepare(str(path))
    assert info.eos_id == 50256 and info.sha256 == prepare("gpt2").sha256


def test_bad_tokenizer_path_is_one_line_error(tmp_path):
    with pytest.raises(CurateError, match="cannot load tokenizer"):
        prepare(str(tmp_path / "missing.json"))


def test_trained_tokenizer_is_deterministic_and_exact(jsonl_texts):
    texts = list(jsonl_texts)
    first, second = train(texts, 600), train(texts, 600)
    assert first.json == second.json
    assert first.vocab_size <= 600 and first.token_dtype == "uint16"
    tokenizer = load(first.json)
    assert tokenizer.id_to_token(first.eos_id) == "<|endoftext|>"
    for text in texts[:5]:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_dtype_follows_vocabulary_size():
    assert token_dtype(65536) == "uint16" and token_dtype(65537) == "uint32"

"""`curate lm`: KenLM tools, training on real text, and the perplexity stage scoring with the result."""

from __future__ import annotations

import glob
import gzip
import json
import os
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.cli import main
from curate.config import parse_config
from curate.core.errors import CurateError
from curate.filters.perplexity import PerplexityConfig, bucket, load_kenlm, make_filter, normalize_line
from curate.lm import build_tools, find_tools, tools_dir, training_lines
from curate.run import run


def shuffled_words(text: str, seed: int = 0) -> str:
    """The same words in each line, in a random order: same vocabulary, no language."""
    rng = random.Random(seed)
    lines = []
    for line in text.split("\n"):
        words = line.split()
        rng.shuffle(words)
        lines.append(" ".join(words))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def kenlm_tools() -> None:
    """lmplz and build_binary: cached, or built now; outside CI a machine without Boost skips."""
    if find_tools():
        return
    try:
        build_tools()
    except CurateError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot build KenLM's lmplz here ({error}); run `curate lm build-tools`")


@pytest.fixture(scope="module")
def split(jsonl_texts) -> tuple[list[str], list[str]]:
    """The 20 real CCNet-processed English documents of the JSONL samples: 16 to train on, 4 held out."""
    docs = list(jsonl_texts)
    held_out = docs[::5]
    return [d for i, d in enumerate(docs) if i % 5], held_out


@pytest.fixture(scope="module")
def trained(kenlm_tools, split, tmp_path_factory) -> Path:
    """A 5-gram trained through the CLI on 16 of the 20 documents (JSONL, as users pass it)."""
    work = tmp_path_factory.mktemp("lm")
    corpus = work / "train.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"text": text}) + "\n" for text in split[0])
    model = work / "en.binary"
    assert main(["lm", "train", "--corpus", str(corpus), "--order", "5", "--output", str(model)]) == 0
    return model


def test_held_out_text_is_less_perplexing_than_its_shuffled_words(trained, split):
    filt = make_filter(PerplexityConfig(enabled=True, model=str(trained)))
    held_out = split[1]
    real = filt.annotate([{"text": t} for t in held_out])
    salad = filt.annotate([{"text": shuffled_words(t)} for t in held_out])
    for r, s in zip(real, salad, strict=True):
        assert r["perplexity"] < s["perplexity"]
    mean = sum(r["perplexity"] for r in real) / len(real)
    mean_salad = sum(s["perplexity"] for s in salad) / len(salad)
    assert mean_salad > 1.3 * mean


def test_training_text_scores_lower_than_held_out(trained, split):
    filt = make_filter(PerplexityConfig(enabled=True, model=str(trained)))
    seen = [a["perplexity"] for a in filt.annotate([{"text": t} for t in split[0]])]
    unseen = [a["perplexity"] for a in filt.annotate([{"text": t} for t in split[1]])]
    assert max(seen) < min(unseen)


def test_filter_is_ccnet_formula_over_normalised_lines(trained, split):
    model = load_kenlm(str(trained))
    text = split[1][0]
    lines = [normalize_line(line) for line in text.split("\n")]
    lines = [line for line in lines if line]
    expected = 10 ** (-sum(model.score(ln) for ln in lines) / sum(len(ln.split()) + 1 for ln in lines))
    [scored] = make_filter(PerplexityConfig(model=str(trained))).annotate([{"text": text}])
    assert scored["perplexity"] == pytest.approx(expected)


def test_per_language_models_and_max_perplexity(trained, split):
    # "eng" is normalised to the "en" that langid writes
    cfg = PerplexityConfig(model={"eng": str(trained)}, max_perplexity=1500.0, buckets=(500.0, 1500.0))
    filt = make_filter(cfg)
    docs = [{"text": t, "lang": "en"} for t in split[1]] + [{"text": split[1][0], "lang": "de"}]
    results = [(a, filt.decide(a, d)) for a, d in zip(filt.annotate(docs), docs, strict=True)]
    *english, (german, german_reason) = results
    assert german == {"perplexity": None, "ppl_bucket": None} and german_reason is None
    for scored, reason in english:
        too_high = scored["perplexity"] > 1500.0
        assert reason == ("perplexity" if too_high else None)
        assert scored["ppl_bucket"] == bucket(scored["perplexity"], (500.0, 1500.0))
    assert {reason for _, reason in english} == {None, "perplexity"}  # the threshold splits the real docs


def test_pipeline_perplexity_stage_uses_the_trained_model(trained, split, tmp_path):
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(split[1])))
    out = tmp_path / "out"
    recipe = {
        "input": [str(held_out)],
        "output": str(out),
        "runner": {"name": "direct", "workers": 1},
        "stages": {
            "quality": {"enabled": False},
            "dedup_exact": {"enabled": False},
            "dedup_minhash": {"enabled": False},
            "perplexity": {"enabled": True, "model": str(trained), "max_perplexity": 1500.0},
            "tokenize": {"shard_tokens": 20_000},
        },
    }
    run(parse_config(recipe), progress=False)
    expected = make_filter(PerplexityConfig(model=str(trained))).annotate([{"text": t} for t in split[1]])
    by_text = {t: a["perplexity"] for t, a in zip(split[1], expected, strict=True)}
    rows = [r for f in sorted(glob.glob(str(out / "*" / "*.parquet"))) for r in pq.read_table(f).to_pylist()]
    docs = [r for r in rows if "text" in r]
    assert len(docs) == len(split[1])
    for row in docs:
        assert row["perplexity"] == pytest.approx(by_text[row["text"]])
        assert (row.get("reason") == "perplexity") == (row["perplexity"] > 1500.0)


def test_sentencepiece_tokenised_model_as_ccnet(kenlm_tools, split, tmp_path):
    import sentencepiece

    normalised = tmp_path / "normalised.txt"
    normalised.write_text("\n".join(training_lines([_write(tmp_path / "train.txt", split[0])])))
    sentencepiece.SentencePieceTrainer.train(
        input=str(normalised),
        model_prefix=str(tmp_path / "sp"),
        vocab_size=1000,
        character_coverage=1.0,
        minloglevel=2,
    )
    sp, model = str(tmp_path / "sp.model"), tmp_path / "sp.binary"
    argv = ["lm", "train", "--corpus", str(tmp_path / "train.txt"), "--sentencepiece", sp]
    assert main([*argv, "--order", "5", "--output", str(model)]) == 0
    filt = make_filter(PerplexityConfig(model=str(model), sentencepiece=sp))
    real = filt.annotate([{"text": t} for t in split[1]])
    salad = filt.annotate([{"text": shuffled_words(t)} for t in split[1]])
    assert all(r["perplexity"] < s["perplexity"] for r, s in zip(real, salad, strict=True))
    # the stage scores SentencePiece pieces of the normalised lines, pooled as CCNet pools words
    processor = sentencepiece.SentencePieceProcessor(model_file=sp)
    lines = [normalize_line(line) for line in split[1][0].split("\n")]
    pieces = [" ".join(processor.encode(line, out_type=str)) for line in lines if line]
    kenlm_model = load_kenlm(str(model))
    logprob = sum(kenlm_model.score(p) for p in pieces)
    assert real[0]["perplexity"] == pytest.approx(10 ** (-logprob / sum(len(p.split()) + 1 for p in pieces)))


def _write(path: Path, texts: list[str]) -> Path:
    path.write_text("\n".join(texts), encoding="utf-8")
    return path


def test_training_lines_are_normalised_like_queries(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("Hello World 42\n\n  Café — «Ça va»  \n")
    assert list(training_lines([corpus])) == ["hello world 00", 'cafe  -  "ca va"']


def test_jsonl_without_the_text_field_is_a_one_line_error(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"body": "x"}\n')
    with pytest.raises(CurateError, match=r"c.jsonl: line 1: .*'text' field; pass --text-field"):
        list(training_lines([corpus]))


def test_missing_corpus_file_is_reported(tmp_path, capsys):
    code = main(["lm", "train", "--corpus", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "m.arpa")])
    assert code == 2
    assert "nope.txt: corpus file not found" in capsys.readouterr().err


def test_tools_dir_follows_curate_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_HOME", str(tmp_path))
    assert tools_dir() == tmp_path / "kenlm" / "bin"

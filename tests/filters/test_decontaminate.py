"""Decontamination (filters/decontaminate.py) with real text: n-grams planted from an evaluation file into
real documents are all found; the shared crawl against an unrelated real evaluation file matches nothing."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.cli import main as cli_main
from curate.config import parse_config
from curate.core.errors import CurateError
from curate.filters.decontaminate import (
    DecontaminateConfig,
    Decontaminator,
    EvalSetConfig,
    NgramIndex,
    build_index,
    stage_spec,
    words_of,
)
from curate.filters.dedup_text import ngram_positions


@pytest.fixture
def jigsaw_eval(tmp_path, jigsaw):
    """`jigsaw_eval(split)`: a real evaluation file (Jigsaw comments) as JSONL with `comment_text`."""

    def write(split: str) -> str:
        path = tmp_path / f"jigsaw-{split}.jsonl"
        rows = [
            {"comment_text": r["comment_text"], "toxic": r["toxic"]} for r in jigsaw(split, scored_only=False)
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def cc_documents(jsonl_texts) -> list[dict]:
    """The CCNet samples' 20 documents (a fresh list: change it freely)."""
    return [{"text": text} for text in jsonl_texts]


def test_planted_ngrams_are_all_found(jigsaw_eval, cc_documents, capsys):
    eval_path = jigsaw_eval("train")
    index = build_index([EvalSetConfig(name="jigsaw", paths=[eval_path], fields=["comment_text"])])
    items = [json.loads(line)["comment_text"] for line in Path(eval_path).read_text("utf-8").splitlines()]
    long_items = [item for item in items if len(item.split()) >= 20]
    rng = random.Random(7)
    docs = cc_documents
    planted = set(range(0, len(docs), 2))
    for i in planted:
        words = rng.choice(long_items).split()
        start = rng.randrange(0, len(words) - 15)
        span = " ".join(words[start : start + 15]).upper()  # case and spacing differ: normalised away
        lines = docs[i]["text"].split("\n")
        lines.insert(len(lines) // 2, f"  {span}  ")
        docs[i] = {"text": "\n".join(lines)}
    decont = Decontaminator(index)
    annotations = decont.annotate(docs)
    found = {i for i, a in enumerate(annotations) if a["decont_ngrams"] > 0}
    with capsys.disabled():
        print(f"\ndecontamination: planted spans found in {len(found & planted)} of {len(planted)} documents")
    assert found == planted
    for i in planted:
        assert annotations[i]["decont_sets"] == "jigsaw" and annotations[i]["decont_ngrams"] >= 3
        assert decont.decide(annotations[i], docs[i]) == "eval_jigsaw"


def test_shared_crawl_against_an_unrelated_eval_file_matches_nothing(
    jigsaw_eval, cc_documents, crawl_pages, capsys
):
    index = build_index([EvalSetConfig(name="jigsaw", paths=[jigsaw_eval("test")], fields=["comment_text"])])
    docs = [*crawl_pages, *cc_documents]
    annotations = Decontaminator(index).annotate(docs)
    matches = sum(a["decont_ngrams"] for a in annotations)
    with capsys.disabled():
        print(f"\ndecontamination: {matches} matching 13-grams in {len(docs)} unrelated real documents")
    assert len(index.hashes) > 1000 and len(docs) > 80
    assert matches == 0


def test_lines_mode_drops_only_overlapping_lines():
    question = "which planet in the solar system has the largest number of confirmed natural satellites today"
    hashes = np.unique(ngram_positions(words_of(question), 13))
    index = NgramIndex(hashes, np.ones(len(hashes), np.uint64), ["q"], 13, {"q": 1}, {"q": 0})
    text = (
        "Intro line stays.\nQuiz: Which planet in the Solar System has the largest number of\n"
        "confirmed natural satellites today? Saturn.\nOutro stays."
    )
    decont = Decontaminator(index, mode="lines")
    (annotations,) = decont.annotate([{"text": text}])
    assert annotations["text"] == "Intro line stays.\nOutro stays."
    assert annotations["decont_lines"] == 2 and annotations["decont_sets"] == "q"
    assert decont.decide(annotations, {"text": annotations["text"]}) is None


def test_parquet_lists_and_index_file_round_trip(tmp_path):
    path = tmp_path / "mcq.parquet"
    question = "A real question long enough to hold a thirteen word n-gram for the index to keep"
    pq.write_table(
        pa.table(
            {"question": [question, "too short"], "choices": [["alpha", "beta"], ["x"]], "answer": ["a", "b"]}
        ),
        path,
    )
    index = build_index([EvalSetConfig(name="mcq", paths=[str(path)], fields=["question", "choices"])])
    assert index.items == {"mcq": 1} and index.short_items == {"mcq": 1}
    index.save(str(tmp_path / "idx.npz"))
    loaded = NgramIndex.load(str(tmp_path / "idx.npz"))
    assert (loaded.hashes == index.hashes).all() and loaded.names == ["mcq"] and loaded.ngram == 13
    cfg = DecontaminateConfig(enabled=True, index=str(tmp_path / "idx.npz"))
    (annotations,) = stage_spec(cfg).make().annotate([{"text": f"Intro. {question} alpha beta. End."}])
    assert annotations["decont_ngrams"] == len(index.hashes)


def test_cli_builds_an_index_the_stage_loads(tmp_path, jigsaw_eval, capsys):
    eval_path = jigsaw_eval("test")
    output = tmp_path / "jigsaw.npz"
    assert (
        cli_main(["decont", "index", f"jig={eval_path}", "--fields", "comment_text", "--output", str(output)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "jig:" in printed and "distinct 13-grams" in printed
    cfg = parse_config({"stages": {"decontaminate": {"enabled": True, "index": str(output)}}})
    assert stage_spec(cfg.stages.decontaminate).make().index.names == ["jig"]


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(CurateError, match="n-gram index .* not found"):
        stage_spec(DecontaminateConfig(enabled=True, index=str(tmp_path / "missing.npz")))
    with pytest.raises(CurateError, match="needs eval_sets or index"):
        parse_config({"stages": {"decontaminate": {"enabled": True}}})

"""The classifier, decontaminate and pii stages inside real runs, on the local and the portable runner:
scores on every document, min_score, token-weighted buckets, benchmark removal counted per eval set,
redacted text in the shards (which `curate shards verify` decodes), every document accounted for."""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.cli import main as cli_main
from curate.config import parse_config
from curate.filters.classifier import ClassifierConfig, QualityClassifier
from curate.run import run

pytestmark = pytest.mark.slow
OFF = {"enabled": False}
PII_TAIL = (
    "\nContact jane.doe@example-mail.com, server 8.8.8.8, gateway 192.168.1.20, IPv6 2001:4860:4860::8888 "
    "and fe80::1; phone +1 415-555-2671; card 4111 1111 1111 1111, not 4111 1111 1111 1112."
)


def _chunks(text: str, words: int = 120) -> list[str]:
    """Paragraphs of at least 20 words, long ones cut into pieces of ``words`` (no document holds more
    than ~1% of the tokens, so token-weighted buckets can be filled to within a document)."""
    out = []
    for paragraph in text.split("\n"):
        tokens = paragraph.split()
        for start in range(0, len(tokens), words):
            piece = tokens[start : start + words]
            if len(piece) >= 20:
                out.append(" ".join(piece))
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, demo_corpus, quality_model, jigsaw, jsonl_texts) -> dict:
    """Real paragraphs of CC documents and Wikipedia articles; the best-scored ones get planted PII or
    benchmark text (so they reach the stages after the classifier); `min_score` is the scores' lower
    third (DCLM's settings on ~150 examples give a model whose probabilities sit close to 0.5: its
    ranking is what separates, see test_classifier_train)."""
    root = tmp_path_factory.mktemp("inputs")
    eval_rows = [
        r["comment_text"] for r in jigsaw("test", scored_only=False) if len(r["comment_text"].split()) >= 30
    ]
    eval_path = root / "jigsaw.jsonl"
    eval_path.write_text("".join(json.dumps({"comment_text": t}) + "\n" for t in eval_rows), encoding="utf-8")
    docs = []
    docs += [{"text": chunk} for text in jsonl_texts for chunk in _chunks(text)]
    with gzip.open(demo_corpus / "wikipedia-en.jsonl.gz", "rt", encoding="utf-8") as handle:
        wiki = [json.loads(line)["text"] for line in handle][:40]
    docs += [{"text": chunk} for text in wiki for chunk in _chunks(text)[:3]]
    base_scores = _scores(quality_model[0], docs)
    best = sorted(range(len(docs)), key=lambda i: -base_scores[i])[:6]
    planted_pii, planted_eval = best[:3], best[3:]
    for i in planted_pii:
        docs[i]["text"] += PII_TAIL
    for i, row in zip(planted_eval, eval_rows, strict=False):
        docs[i]["text"] += "\n" + " ".join(row.split()[:20])
    for i, doc in enumerate(docs):
        doc["id"] = f"doc-{i:04d}"
    path = root / "docs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(doc) + "\n" for doc in docs)
    scores = _scores(quality_model[0], docs)
    min_score = sorted(scores)[len(scores) // 3]
    assert all(scores[i] >= min_score for i in best)
    return {
        "min_score": min_score,
        "path": str(path),
        "eval": str(eval_path),
        "docs": docs,
        "pii": [docs[i]["id"] for i in planted_pii],
        "eval_ids": [docs[i]["id"] for i in planted_eval],
    }


def _scores(model: Path, docs: list[dict]) -> list[float]:
    cfg = ClassifierConfig(enabled=True, models=[{"name": "wiki", "path": str(model)}])
    return [a["wiki_score"] for a in QualityClassifier(cfg).annotate(docs)]


@pytest.fixture(scope="module")
def min_score(inputs) -> float:
    return inputs["min_score"]


def _recipe(inputs: dict, model: Path, out: Path, min_score: float, **runner) -> dict:
    stages = {name: OFF for name in ("extract", "langid", "quality", "dedup_exact", "dedup_minhash")}
    stages["classifier"] = {
        "enabled": True,
        "models": [{"name": "wiki", "path": str(model), "min_score": min_score, "buckets": 10}],
    }
    stages["decontaminate"] = {
        "enabled": True,
        "eval_sets": [{"name": "jigsaw", "paths": [inputs["eval"]], "fields": ["comment_text"]}],
    }
    stages["pii"] = {"enabled": True, "phones": True, "cards": True}
    stages["tokenize"] = {"shard_tokens": 20_000}
    return {
        "input": [inputs["path"]],
        "output": str(out),
        "runner": {"name": "direct", "workers": 1, **runner},
        "stages": stages,
    }


def _read(out: Path, sub: str) -> list[dict]:
    return [
        row for f in sorted(glob.glob(str(out / sub / "*.parquet"))) for row in pq.read_table(f).to_pylist()
    ]


def _digests(out: Path) -> dict[str, str]:
    return {
        Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()
        for p in sorted(glob.glob(str(out / "shards" / "*.parquet")))
    }


@pytest.fixture(scope="module")
def local_run(inputs, quality_model, min_score, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    summary = run(parse_config(_recipe(inputs, quality_model[0], out, min_score)), progress=False)
    return out, summary


def test_every_document_is_accounted_for(local_run, inputs):
    out, summary = local_run
    stats = json.loads((out / "stats.json").read_text())
    assert stats["balanced"]
    assert list(stats["stages"]) == ["read", "classifier", "decontaminate", "pii", "tokenize"]
    kept, rejected = _read(out, "documents"), _read(out, "rejected")
    assert len(kept) + len(rejected) == len(inputs["docs"]) == stats["documents_read"]
    assert sorted(d["id"] for d in kept + rejected) == sorted(d["id"] for d in inputs["docs"])


def test_classifier_scores_every_document_and_keeps_per_min_score(local_run, min_score):
    out, _ = local_run
    kept, rejected = _read(out, "documents"), _read(out, "rejected")
    assert all(0.0 <= d["wiki_score"] <= 1.0 for d in kept + rejected)
    assert all(d["wiki_score"] >= min_score for d in kept)
    by_classifier = [d for d in rejected if d["stage"] == "classifier"]
    assert by_classifier and all(d["reason"] == "wiki_below_min_score" for d in by_classifier)
    assert all(d["wiki_score"] < min_score for d in by_classifier)


def test_ten_buckets_hold_a_tenth_of_the_tokens_each(local_run, capsys):
    out, _ = local_run
    kept = _read(out, "documents")
    rejected_later = [d for d in _read(out, "rejected") if d["stage"] != "classifier"]
    ranked = kept + rejected_later  # every document that left the classifier stage has a bucket
    total = sum(d["classifier_tokens"] for d in ranked)
    shares = [sum(d["classifier_tokens"] for d in ranked if d["wiki_bucket"] == b) / total for b in range(10)]
    with capsys.disabled():
        print("\nclassifier bucket token shares:", " ".join(f"{s:.3f}" for s in shares))
    assert all(abs(share - 0.1) <= 0.02 for share in shares)
    ordered = sorted(ranked, key=lambda d: d["wiki_score"])
    assert [d["wiki_bucket"] for d in ordered] == sorted(d["wiki_bucket"] for d in ordered)


def test_benchmark_text_is_removed_and_counted_per_eval_set(local_run, inputs):
    out, _ = local_run
    rejected = {d["id"]: d for d in _read(out, "rejected")}
    assert all(rejected[i]["reason"] == "eval_jigsaw" for i in inputs["eval_ids"])
    assert all(
        rejected[i]["decont_sets"] == "jigsaw" and rejected[i]["decont_ngrams"] >= 1
        for i in inputs["eval_ids"]
    )
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stages"]["decontaminate"]["rejected"] == {"eval_jigsaw": len(inputs["eval_ids"])}


def test_shards_hold_the_redacted_text_and_verify(local_run, inputs, capsys):
    out, _ = local_run
    kept = {d["id"]: d for d in _read(out, "documents")}
    for doc_id in inputs["pii"]:
        text = kept[doc_id]["text"]
        for public in ("jane.doe@example-mail.com", "8.8.8.8", "2001:4860:4860::8888", "+1 415-555-2671",
                       "4111 1111 1111 1111,"):  # fmt: skip
            assert public not in text
        assert "192.168.1.20" in text and "fe80::1" in text and "4111 1111 1111 1112" in text
        assert kept[doc_id]["pii_emails"] == 1 and kept[doc_id]["pii_ips"] == 2
        assert kept[doc_id]["pii_phones"] == 1 and kept[doc_id]["pii_cards"] == 1
    assert cli_main(["shards", "verify", str(out)]) == 0


def test_portable_runner_gives_identical_shards_and_documents(
    local_run, inputs, quality_model, min_score, tmp_path, beam_job_service
):
    out, _ = local_run
    portable = tmp_path / "portable"
    recipe = _recipe(inputs, quality_model[0], portable, min_score)
    recipe["runner"] = {"name": "portable", "job_endpoint": beam_job_service}
    run(parse_config(recipe), progress=False)
    assert _digests(portable) == _digests(out)
    key = lambda d: d["id"]  # noqa: E731
    assert sorted(_read(portable, "documents"), key=key) == sorted(_read(out, "documents"), key=key)
    assert sorted(_read(portable, "rejected"), key=key) == sorted(_read(out, "rejected"), key=key)
    assert (
        json.loads((portable / "stats.json").read_text())["stages"]
        == json.loads((out / "stats.json").read_text())["stages"]
    )

"""ExactDedup and MinHashDedup on Beam's real runners, on real English web text with constructed
copies: exact copies differing in case and punctuation, near copies with 2% of words dropped."""

from __future__ import annotations

import random
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from curate.pipelines.dedup_exact import STAGE as EXACT_STAGE
from curate.pipelines.dedup_exact import DedupExactConfig
from curate.pipelines.dedup_minhash import STAGE as MINHASH_STAGE
from curate.pipelines.dedup_minhash import DedupMinhashConfig


def _doc(doc_id: str, text: str) -> dict[str, Any]:
    return {"id": doc_id, "url": None, "text": text, "source": "test", "metadata": {}}


def _drop_words(text: str, rate: float, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(word for word in text.split() if rng.random() >= rate)


@pytest.fixture
def corpus(jsonl_texts) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """20 real documents (ids d00..d19) plus copies; returns docs and {copy id: original id}."""
    texts = jsonl_texts
    docs = [_doc(f"d{i:02d}", text) for i, text in enumerate(texts)]
    long_ones = [i for i, text in enumerate(texts) if len(text.split()) > 300][:6]
    copies = {}
    for i in long_ones[:3]:  # exact up to normalisation
        copies[f"x{i:02d}"] = f"d{i:02d}"
        docs.append(_doc(f"x{i:02d}", texts[i].upper().replace(".", " . ")))
    for i in long_ones[3:]:  # near: 2% of words dropped (Jaccard of 5-grams ~0.9)
        copies[f"n{i:02d}"] = f"d{i:02d}"
        docs.append(_doc(f"n{i:02d}", _drop_words(texts[i], 0.02, seed=i)))
    return docs, copies


def _run(stage: beam.PTransform, docs: list[dict[str, Any]], check, options: PipelineOptions | None = None):
    runner = None if options else FnApiRunner()
    with beam.Pipeline(runner=runner, options=options) as pipeline:
        kept, rejected = pipeline | beam.Create(docs) | stage
        check(kept, rejected)


def test_exact_dedup_rejects_copies_that_differ_only_in_case_and_punctuation(corpus):
    docs, copies = corpus
    exact = {c: o for c, o in copies.items() if c.startswith("x")}

    def check(kept, rejected):
        assert_that(
            kept | beam.Map(lambda d: d["id"]), equal_to([d["id"] for d in docs if d["id"] not in exact])
        )
        assert_that(
            rejected | beam.Map(lambda d: (d["id"], d["reason"], d["stage"], d["dup_of"])),
            equal_to([(c, "duplicate_exact", "dedup_exact", o) for c, o in exact.items()]),
            label="rejected",
        )

    _run(EXACT_STAGE.build(DedupExactConfig()), docs, check)


def test_exact_dedup_with_case_kept_keeps_upper_case_copies(corpus):
    docs, _ = corpus

    def check(kept, rejected):
        assert_that(kept | beam.combiners.Count.Globally(), equal_to([len(docs)]))

    _run(EXACT_STAGE.build(DedupExactConfig(lowercase=False)), docs, check)


def _expected_minhash(docs, copies):
    kept = [d["id"] for d in docs if d["id"] not in copies]
    rejected = [(c, "duplicate_near", o, 2) for c, o in copies.items()]
    return kept, rejected


def _minhash_check(docs, copies):
    kept_ids, rejected_rows = _expected_minhash(docs, copies)

    def check(kept, rejected):
        assert_that(kept | beam.Map(lambda d: d["id"]), equal_to(kept_ids))
        assert_that(
            rejected | beam.Map(lambda d: (d["id"], d["reason"], d["dup_cluster"], d["dup_cluster_size"])),
            equal_to(rejected_rows),
            label="rejected",
        )
        survivors = sorted(set(copies.values()))
        assert_that(
            kept
            | beam.Filter(lambda d: d["dup_cluster"] is not None)
            | beam.Map(lambda d: (d["id"], d["dup_cluster"], d["dup_cluster_size"])),
            equal_to([(s, s, 2) for s in survivors]),
            label="survivors",
        )

    return check


def test_minhash_dedup_clusters_exact_and_near_copies_and_keeps_the_smallest_id(corpus):
    docs, copies = corpus
    _run(MINHASH_STAGE.build(DedupMinhashConfig()), docs, _minhash_check(docs, copies))


def test_minhash_dedup_is_the_same_on_the_multi_process_runner(corpus):
    docs, copies = corpus
    options = PipelineOptions(
        ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    )
    _run(MINHASH_STAGE.build(DedupMinhashConfig()), docs, _minhash_check(docs, copies), options)


def test_minhash_dedup_with_finewebs_bands_and_no_verification(corpus):
    docs, copies = corpus
    config = DedupMinhashConfig(num_perm=112, bands=14, rows=8, verify=False)
    _run(MINHASH_STAGE.build(config), docs, _minhash_check(docs, copies))

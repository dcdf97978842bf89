"""A filter stage hands its filter full batches of its batch_size from the first document on
(pipelines/stage.py batches_of), not Beam's adaptive sizes, which start every bundle at one document."""

from __future__ import annotations

from collections import Counter

import apache_beam as beam
from apache_beam.testing.util import assert_that

from curate.pipelines.stage import FilterStage


class BatchSizeFilter:
    """Annotates each document with the size of the batch it came in."""

    annotation_types = {"batch": "int32"}

    def annotate(self, docs):
        return [{"batch": len(docs)} for _ in docs]

    def decide(self, annotations, doc):
        return None


def test_a_filter_sees_full_batches_of_its_batch_size():
    def check(docs):
        sizes = Counter(doc["batch"] for doc in docs)
        # one bundle of 20 documents in batches of 8: two full batches and the bundle's rest
        assert sizes == Counter({8: 16, 4: 4}), sizes

    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"])) as p:
        docs = p | beam.Create([{"id": str(n), "text": "x"} for n in range(20)], reshuffle=False)
        kept, rejected = docs | FilterStage("sizes", BatchSizeFilter, batch_size=8)
        assert_that(kept, check)

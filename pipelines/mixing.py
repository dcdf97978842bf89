"""Mixing's draw in Beam: each tokenized document goes into the shards 0..k times by a seeded hash of its
id, at its domain's rate from the plan (filters/mixing.py), which needs every domain's token total first.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

from curate.core.config import Role, StageDef
from curate.filters.mixing import DOWNSAMPLED, NOT_IN_MIX, MixingConfig, copies
from curate.pipelines.encode import KEPT_TAG, TOKENS_TAG, Document, RowMaker
from curate.pipelines.stage import REJECTED_TAG, reject


class Sample(beam.DoFn):
    """Mixing's draw: each document goes in ``copies`` times (0 = rejected) by a hash of its id; the
    chosen ones leave as shard rows (one per copy) and annotated documents, like `_Encode`'s."""

    def __init__(self, seed: int, rows: RowMaker):
        self._seed = seed
        self._rows = rows

    def process(self, item: tuple[Document, bytes], plan: dict[str, Any]):
        doc, data = item
        domain_plan = plan.get(doc["domain"])
        rate = domain_plan.rate if domain_plan is not None else 0.0
        n = copies(rate, self._seed, doc["id"])
        if n == 0:
            reason = NOT_IN_MIX if rate == 0 else DOWNSAMPLED
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, STAGE.name, reason))
            return
        yield from self._rows(doc, data, n)
        yield beam.pvalue.TaggedOutput(KEPT_TAG, {**doc, "epochs": n})
        yield beam.pvalue.TaggedOutput(TOKENS_TAG, (doc["domain"], doc["n_tokens"] * n))


# Implemented by the shard tail (pipelines/token_shards.py): mixing samples by tokens, not documents.
STAGE = StageDef(name="mixing", config=MixingConfig, role=Role.SHARDS)

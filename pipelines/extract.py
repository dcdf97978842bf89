"""The `extract` stage: WARC responses' HTML -> main text; already-textual records pass through.

Reading is fused with this stage, so raw HTML never crosses a shuffle; when the input units are fewer
than the workers can share, the pipeline spreads the kept documents over them after extraction.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import apache_beam as beam
from pydantic import Field

from curate.core.config import Role, StageConfig
from curate.core.errors import CurateError
from curate.filters.html_extract import extract_main_text, is_html_content_type, missing_dependency
from curate.pipelines.dedup_index import Versions
from curate.pipelines.stage import REJECTED_TAG, StageTransform, TransformStageDef, reject


class ExtractConfig(StageConfig):
    extractor: Literal["resiliparse", "trafilatura"] = Field(
        "resiliparse", description="HTML main-text extractor for WARC responses."
    )
    min_chars: int = Field(1, ge=0, description="Reject extractions shorter than this (reason: empty).")
    max_html_bytes: int = Field(
        5_000_000, ge=1, description="Pages larger than this are rejected (reason: too_large)."
    )


class _Extract(beam.DoFn):
    def __init__(self, stage_name: str, cfg: ExtractConfig):
        self._stage_name = stage_name
        self._cfg = cfg

    def process(self, record: dict[str, Any]) -> Iterator[Any]:
        # The raw body and its HTTP headers end here: the document that leaves has text instead.
        doc = {k: v for k, v in record.items() if k not in ("html", "content_type", "charset")}
        body = record.get("html")
        if body is not None:
            status = doc["metadata"].get("http_status")
            if status is not None and not 200 <= status < 300:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, self._stage_name, "http_status"))
                return
            if not is_html_content_type(record.get("content_type")):
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, self._stage_name, "not_html"))
                return
            if len(body) > self._cfg.max_html_bytes:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, self._stage_name, "too_large"))
                return
            doc["text"] = extract_main_text(body, record.get("charset"), self._cfg.extractor)
        if len(doc["text"].strip()) < self._cfg.min_chars:
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, self._stage_name, "empty"))
            return
        yield doc


class ExtractStage(StageTransform):
    def __init__(self, stage_name: str, cfg: ExtractConfig, versions: Versions | None = None):
        super().__init__(label=stage_name)
        self.stage_name = stage_name
        self._cfg = cfg
        missing = missing_dependency(cfg.extractor)
        if missing:  # fail before the run starts, not in a worker on the first page
            raise CurateError(
                f"stages.extract.extractor: {cfg.extractor} needs the Python package {missing}, which is not "
                f"installed; pip install {missing} (or reinstall curate)"
            )

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = docs | "Extract" >> beam.ParDo(_Extract(self.stage_name, self._cfg)).with_outputs(
            REJECTED_TAG, main="kept"
        )
        # The pipeline spreads the kept documents over the workers after this stage when the input units
        # are too few to keep every worker busy (curation.build, RunnerConfig.spreads_documents).
        return outputs.kept, outputs[REJECTED_TAG]


STAGE = TransformStageDef(name="extract", config=ExtractConfig, transform=ExtractStage, role=Role.PREPARE)

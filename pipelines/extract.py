"""The `extract` stage: WARC responses' HTML -> main text; already-textual records pass through."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from curate.filters.html_extract import extract_main_text, is_html_content_type, missing_dependency
from curate.pipelines.stage import REJECTED_TAG, StageTransform, reject

from curate.config import Config, ExtractConfig
from curate.core.errors import CurateError


class _Extract(beam.DoFn):
    def __init__(self, cfg: ExtractConfig):
        self._cfg = cfg

    def process(self, doc: dict[str, Any]) -> Iterator[Any]:
        body = doc.pop("html", None)
        content_type = doc.pop("content_type", None)
        charset = doc.pop("charset", None)
        if body is not None:
            status = doc["metadata"].get("http_status")
            if status is not None and not 200 <= status < 300:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, "extract", "http_status"))
                return
            if not is_html_content_type(content_type):
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, "extract", "not_html"))
                return
            if len(body) > self._cfg.max_html_bytes:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, "extract", "too_large"))
                return
            doc["text"] = extract_main_text(body, charset, self._cfg.extractor)
        if len(doc["text"].strip()) < self._cfg.min_chars:
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, "extract", "empty"))
            return
        yield doc


class ExtractStage(StageTransform):
    stage_name = "extract"
    annotation_types: dict[str, str] = {}

    def __init__(self, cfg: ExtractConfig, config: Config):
        super().__init__(label="extract")
        self._cfg = cfg
        missing = missing_dependency(cfg.extractor)
        if missing:  # fail before the run starts, not in a worker on the first page
            raise CurateError(
                f"stages.extract.extractor: {cfg.extractor} needs the Python package {missing}, which is not "
                f"installed; pip install {missing} (or reinstall curate)"
            )

    def expand(self, docs: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = docs | "Extract" >> beam.ParDo(_Extract(self._cfg)).with_outputs(REJECTED_TAG, main="kept")
        return outputs.kept, outputs[REJECTED_TAG]

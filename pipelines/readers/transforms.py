"""Beam transforms over the readers: files -> documents with run-unique ids, and read-stage rejections ->
one report naming each damaged file."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from curate.core.files import share_s3_clients
from curate.pipelines.progress import flush, report_bytes, report_read
from curate.pipelines.readers.formats import read_file
from curate.pipelines.readers.records import READ_STAGE, InputConfig
from curate.pipelines.stage import REJECTED_TAG, StageTransform
from curate.pipelines.unique_ids import Record, Renames, id_and_record, unique

# What one reader reads: a whole file, or (path, start, end) bytes of a WARC/WET file (record_ranges).
InputUnit = str | tuple[str, int, int]


def _size_of(path: str) -> int:
    """A file's size for progress (bytes of input done); 0 where the filesystem cannot say."""
    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:
        return 0


def _unit(item: InputUnit) -> tuple[str, tuple[int, int] | None]:
    return (item, None) if isinstance(item, str) else (item[0], (item[1], item[2]))


def _ids_of(item: InputUnit, cfg: InputConfig) -> Iterator[tuple[str, Record]]:
    """The first, ids-only pass: ``(id, (source, position))`` of every document of a file."""
    path, byte_range = _unit(item)
    for doc in read_file(path, cfg, byte_range):
        if "reason" not in doc:
            yield id_and_record(doc)


class _ReadFile(beam.DoFn):
    def __init__(self, cfg: InputConfig):
        self._cfg = cfg

    def setup(self) -> None:
        share_s3_clients()  # this worker process's S3 reads and Beam's S3 writes reuse one client

    def process(self, item: InputUnit, renames: dict[Record, str]) -> Iterator[Any]:
        path, byte_range = _unit(item)
        for doc in read_file(path, self._cfg, byte_range):
            report_read()
            if "reason" in doc:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG, doc)
            else:
                yield unique(doc, renames)
        report_bytes(_size_of(path) if byte_range is None else byte_range[1] - byte_range[0])

    def finish_bundle(self) -> None:
        flush()


class ReadDocuments(StageTransform):
    """Files -> documents with ids unique in the run, with unreadable records as rejections of stage
    `read`."""

    stage_name = READ_STAGE
    annotation_types = {"read_error": "string"}

    def __init__(self, cfg: InputConfig, files: list[InputUnit]):
        super().__init__(label="Read")
        self._cfg = cfg
        self._files = files

    def expand(self, pbegin: beam.pvalue.PBegin) -> tuple[beam.PCollection, beam.PCollection]:
        cfg = self._cfg
        files = pbegin | "Files" >> beam.Create(self._files) | "SpreadFiles" >> beam.Reshuffle()
        # Colliding ids are found in a first pass that keeps only ids and record positions; the reader
        # gets the renames as a side input. No reshuffle of documents here, and no step waits with the
        # documents for a side input: either would hold every raw record (HTML included) in the memory
        # of Beam's local runner. Reading stays fused with the stages up to extraction.
        renames = (
            files | "IdsOnly" >> beam.FlatMap(_ids_of, cfg) | "UniqueIds" >> Renames(cfg.on_duplicate_id)
        )
        outputs = files | "Parse" >> beam.ParDo(_ReadFile(cfg), beam.pvalue.AsDict(renames)).with_outputs(
            REJECTED_TAG, main="docs"
        )
        return outputs.docs, outputs[REJECTED_TAG]


MAX_PROBLEM_FILES = 20  # files named on the console and in stats.json; rejected/ has every record


def _reading_order(error: str) -> list[Any]:
    """'f: row 8: ...' before 'f: row 10: ...': numbers compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", error)]


def _count_and_first(values: Iterable[tuple[int, str]]) -> tuple[int, str]:
    values = list(values)
    return sum(count for count, _ in values), min((error for _, error in values), key=_reading_order)


def _problem_report(files: list[tuple[str, tuple[int, str]]]) -> dict[str, Any]:
    console = [
        f"{source}: {count:,} record(s) not read, e.g. {example}" for source, (count, example) in files
    ]
    if len(files) == MAX_PROBLEM_FILES:
        console.append(f"(only the first {MAX_PROBLEM_FILES} files are named; see rejected/ for all)")
    return {
        "kind": "read_problems",
        "files": {source: {"records": count, "example": example} for source, (count, example) in files},
        "console": console,
    }


class ReadProblems(beam.PTransform):
    """Read-stage rejections -> one report naming each damaged file (records lost, one example), so the
    console says which files to look at without anyone opening rejected/."""

    def expand(self, read_rejected: beam.PCollection) -> beam.PCollection:
        return (
            read_rejected
            | "BySource" >> beam.Map(lambda doc: (doc["source"], (1, doc["read_error"])))
            | "PerSource" >> beam.CombinePerKey(_count_and_first)
            | "FirstFiles" >> beam.combiners.Top.Smallest(MAX_PROBLEM_FILES)
            | "Report" >> beam.Map(_problem_report)
        )

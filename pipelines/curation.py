"""The curation pipeline: read -> enabled stages -> tokenize/shards, with every document accounted for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from curate.core.config import StageDef
from curate.core.files import is_local
from curate.pipelines import extract, mixing, token_shards
from curate.pipelines.accounting import count_stage, total_counts
from curate.pipelines.dedup_index import INDEX_DIR, Versions, write_index
from curate.pipelines.progress import flush, report_kept
from curate.pipelines.readers import InputUnit, ReadDocuments, ReadProblems
from curate.pipelines.recipe import Config
from curate.pipelines.stage import StageTransform, TransformStageDef
from curate.pipelines.stage_order import DOCUMENT_STAGES, build_stage
from curate.pipelines.writers import WriteDocuments, document_schema

# The small JSON-lines side file the driver reads back after the run (OUT/.work/side-*.jsonl): one
# writer for every kind of row (one file sink less per kind for the runner to schedule), each line
# ``[kind, row]``.
SIDE_FILE = "side"
STATS, REPORTS, SHARDS = "stats", "reports", "shards"


@dataclass
class Layout:
    """Where a run writes; see docs/recipes.md, 'Output layout'."""

    root: str
    # File-name prefix of this run's documents/, rejected/ and index/ files, and the number of its first
    # shard: a run appended to a folder (a segment, `--append`) writes beside the files already there.
    part: str = "part"
    first_shard: int = 0

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @property
    def work(self) -> str:
        return self.path(".work")


def delete_work(layout: Layout) -> None:
    """The run's side files (OUT/.work/), once read back; object stores delete a "folder" by its prefix."""
    work = layout.work if is_local(layout.work) else layout.work.rstrip("/") + "/"
    FileSystems.delete([work])


def _tagged(pcoll: beam.PCollection, kind: str) -> beam.PCollection:
    return pcoll | f"Tag{kind.title()}" >> beam.Map(lambda row, k=kind: json.dumps([k, row], default=str))


def _write_side_file(tagged: list[beam.PCollection], path: str) -> None:
    (
        tuple(tagged)
        | "AllSideRows" >> beam.Flatten()
        | "WriteSideRows" >> beam.io.WriteToText(path, file_name_suffix=".jsonl")
    )


class _ReportKept(beam.DoFn):
    """Counts kept documents for the console; flushes at bundle end so the last count is not stale."""

    def process(self, doc: dict[str, Any]):
        report_kept()
        yield doc

    def finish_bundle(self) -> None:
        flush()


BuiltStages = list[tuple[StageDef[Any], StageTransform]]


def enabled_stages(config: Config, versions: Versions) -> BuiltStages:
    """The recipe's enabled document stages, built in pipeline order; a stage whose config cannot work
    (a missing model, an `against` version without an index) fails here, before any worker starts."""
    built = []
    for stage_def in DOCUMENT_STAGES:
        stage_config = config.stages.of(stage_def)
        if stage_config.enabled:
            built.append((stage_def, build_stage(stage_def, stage_config, versions)))
    return built


def index_settings(config: Config) -> dict[str, Any]:
    """index.json: what each enabled indexing stage's rows were computed with, by index kind."""
    return {
        stage.index.kind: stage.index.settings(config.stages.of(stage))
        for stage in DOCUMENT_STAGES
        if isinstance(stage, TransformStageDef) and stage.index and config.stages.of(stage).enabled
    }


def build(
    pipeline: beam.Pipeline,
    config: Config,
    files: list[InputUnit],
    layout: Layout,
    stages: BuiltStages,
) -> list[str]:
    """Add the whole curation to ``pipeline``; returns the stage names in order (for stats). ``stages``:
    the recipe's enabled stages, as `enabled_stages` built them (once per run, in the driver)."""
    docs, read_rejected = pipeline | "Read" >> ReadDocuments(config.input, files)
    counts = count_stage("read", None, docs, read_rejected)
    extra_counts: list[beam.PCollection] = []
    reports = [read_rejected | "ReadProblems" >> ReadProblems()]
    rejected = [read_rejected]
    annotations: dict[str, str] = dict(ReadDocuments.annotation_types)
    order = ["read"]

    indexes = []
    for stage_def, stage in stages:
        kept, stage_rejected = docs | stage_def.name >> stage
        counts += count_stage(stage_def.name, docs, kept, stage_rejected)
        extra_counts += stage.extra_counts  # totals, e.g. dedup_lines: lines/chars removed
        if isinstance(stage_def, TransformStageDef) and stage_def.index and stage.index_rows is not None:
            indexes.append((stage_def.index, stage.index_rows))
        rejected.append(stage_rejected)
        annotations.update(stage_def.annotations(config.stages.of(stage_def)))
        order.append(stage_def.name)
        docs = kept
        if stage_def.name == extract.STAGE.name and config.runner.spreads_documents(len(files)):
            # after extraction, so the shuffle carries text, not HTML (docs/incremental.md)
            docs = docs | "SpreadDocs" >> beam.Reshuffle()

    side_rows = []
    tokenize_config = config.stages.of(token_shards.STAGE)
    if tokenize_config.enabled:
        mixing_config = config.stages.of(mixing.STAGE)
        shard_stage = token_shards.TokenizeAndShard(
            tokenize_config, mixing_config, layout.root, first_shard=layout.first_shard
        )
        outputs = docs | token_shards.STAGE.name >> shard_stage
        if outputs.tokenized is None:
            counts += count_stage(token_shards.STAGE.name, docs, outputs.kept, outputs.rejected)
            order.append(token_shards.STAGE.name)
        else:
            # With mixing, tokenize rejects nothing and mixing's draw rejects what it leaves out.
            none_rejected = docs.pipeline | "TokenizeRejectsNone" >> beam.Create([])
            counts += count_stage(token_shards.STAGE.name, docs, outputs.tokenized, none_rejected)
            counts += count_stage(mixing.STAGE.name, outputs.tokenized, outputs.kept, outputs.rejected)
            order += [token_shards.STAGE.name, mixing.STAGE.name]
        rejected.append(outputs.rejected)
        annotations.update(token_shards.STAGE.annotations(tokenize_config))
        docs = outputs.kept
        side_rows.append(_tagged(outputs.shard_infos, SHARDS))
        reports.append(outputs.reports)

    docs = docs | "ReportKept" >> beam.ParDo(_ReportKept())
    if config.output.documents:
        docs | "WriteDocuments" >> WriteDocuments(
            layout.path("documents", layout.part), document_schema(annotations, rejected=False)
        )
    for index, rows in indexes:
        # What the dedup stages saw (survivors' keys, removed near-duplicates' signatures), so that later
        # runs and segments can deduplicate against this version.
        path = layout.path(INDEX_DIR, index.kind, layout.part)
        write_index(rows, path, index.schema, f"WriteIndex{index.kind.title()}")
    all_rejected = tuple(rejected) | "AllRejected" >> beam.Flatten()
    if config.output.rejected:
        all_rejected | "WriteRejected" >> WriteDocuments(
            layout.path("rejected", layout.part), document_schema(annotations, rejected=True)
        )
    side_rows += [
        _tagged(tuple(reports) | "AllReports" >> beam.Flatten(), REPORTS),
        _tagged((total_counts(counts), *extra_counts) | "AllStats" >> beam.Flatten(), STATS),
    ]
    _write_side_file(side_rows, layout.path(".work", SIDE_FILE))
    return order


def read_side_rows(layout: Layout) -> dict[str, list[Any]]:
    """The side file's rows by kind (STATS, REPORTS, SHARDS), read back from any filesystem Beam knows."""
    rows: dict[str, list[Any]] = {STATS: [], REPORTS: [], SHARDS: []}
    prefix = layout.path(".work", SIDE_FILE)
    for match in FileSystems.match([prefix + "*"])[0].metadata_list:
        with FileSystems.open(match.path) as handle:
            for line in handle.read().decode("utf-8").splitlines():
                if line:
                    kind, row = json.loads(line)
                    rows[kind].append(row)
    return rows

"""The curation pipeline: read -> enabled stages -> tokenize/shards, with every document accounted for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from curate.pipelines.accounting import count_stage
from curate.pipelines.readers import ReadDocuments, ReadProblems
from curate.pipelines.registry import enabled_stages
from curate.pipelines.writers import WriteDocuments, document_schema

from curate.config import Config, RunnerConfig

# Names of the small JSON-lines side files the driver reads back after the run (under OUT/.work/).
STATS_FILE = "stats"
SHARDS_FILE = "shards"
REPORTS_FILE = "reports"

_RUNNER_CLASSES = {
    "direct": "DirectRunner",
    "portable": "PortableRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "prism": "PrismRunner",
}


def pipeline_options(runner: RunnerConfig, temp_location: str) -> PipelineOptions:
    """Beam options for the chosen runner; the direct runner never tries to download Prism."""
    args = [f"--runner={_RUNNER_CLASSES[runner.name]}", f"--temp_location={temp_location}"]
    if runner.name == "direct":
        # DirectRunner's default mode first tries to fetch the Prism binary; multi_processing and
        # in_memory run the Fn API runner in-process / in worker processes with nothing downloaded.
        if runner.workers > 1:
            args += [
                "--direct_running_mode=multi_processing",
                f"--direct_num_workers={runner.workers}",
                "--default_sdk_harness_log_level=WARNING",
            ]
        else:
            args += ["--direct_running_mode=in_memory"]
    if runner.name == "portable":
        args += [f"--job_endpoint={runner.job_endpoint}", f"--environment_type={runner.environment_type}"]
    for key, value in runner.options.items():
        args.append(f"--{key}" if value is True else f"--{key}={value}")
    return PipelineOptions(args)


@dataclass
class Layout:
    """Where a run writes; see README 'Output layout'."""

    root: str

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @property
    def work(self) -> str:
        return self.path(".work")


def _to_json_lines(pcoll: beam.PCollection, path: str, label: str) -> None:
    (
        pcoll
        | f"{label}Json" >> beam.Map(lambda row: json.dumps(row, sort_keys=True, default=str))
        | f"{label}Write" >> beam.io.WriteToText(path, file_name_suffix=".jsonl")
    )


class _ReportKept(beam.DoFn):
    """Counts kept documents for the console; flushes at bundle end so the last count is not stale."""

    def process(self, doc: dict[str, Any]):
        from curate.pipelines.progress import report_kept

        report_kept()
        yield doc

    def finish_bundle(self) -> None:
        from curate.pipelines.progress import flush

        flush()


def build(pipeline: beam.Pipeline, config: Config, files: list[str], layout: Layout) -> list[str]:
    """Add the whole curation to ``pipeline``; returns the stage names in order (for stats)."""
    docs, read_rejected = pipeline | "Read" >> ReadDocuments(config.input, files)
    counts = count_stage("read", None, docs, read_rejected)
    reports = [read_rejected | "ReadProblems" >> ReadProblems()]
    rejected = [read_rejected]
    annotations: dict[str, str] = dict(ReadDocuments.annotation_types)
    order = ["read"]

    for stage in enabled_stages(config):
        kept, stage_rejected = docs | stage.stage_name >> stage
        counts += count_stage(stage.stage_name, docs, kept, stage_rejected)
        rejected.append(stage_rejected)
        annotations.update(stage.annotation_types)
        order.append(stage.stage_name)
        docs = kept

    if config.stages.tokenize.enabled:
        from curate.pipelines.shards import TokenizeAndShard

        shard_stage = TokenizeAndShard(config)
        name = "mixing" if config.stages.mixing.enabled else "tokenize"
        outputs = docs | name >> shard_stage
        counts += count_stage(name, docs, outputs.kept, outputs.rejected)
        rejected.append(outputs.rejected)
        annotations.update(getattr(shard_stage, "annotation_types", {}))
        order.append(name)
        docs = outputs.kept
        _to_json_lines(outputs.shard_infos, layout.path(".work", SHARDS_FILE), "ShardInfos")
        reports.append(outputs.reports)

    docs = docs | "ReportKept" >> beam.ParDo(_ReportKept())
    if config.output.documents:
        docs | "WriteDocuments" >> WriteDocuments(
            layout.path("documents", "part"), document_schema(annotations, rejected=False)
        )
    all_rejected = tuple(rejected) | "AllRejected" >> beam.Flatten()
    if config.output.rejected:
        all_rejected | "WriteRejected" >> WriteDocuments(
            layout.path("rejected", "part"), document_schema(annotations, rejected=True)
        )
    all_reports = tuple(reports) | "AllReports" >> beam.Flatten()
    _to_json_lines(all_reports, layout.path(".work", REPORTS_FILE), "Reports")
    stats_rows = tuple(counts) | "AllCounts" >> beam.Flatten()
    _to_json_lines(stats_rows, layout.path(".work", STATS_FILE), "Stats")
    return order


def read_json_lines(prefix: str) -> list[Any]:
    """Read back the side files a run wrote under ``prefix`` (any filesystem Beam knows)."""
    from apache_beam.io.filesystems import FileSystems

    rows: list[Any] = []
    for match in FileSystems.match([prefix + "*"])[0].metadata_list:
        with FileSystems.open(match.path) as handle:
            rows += [json.loads(line) for line in handle.read().decode("utf-8").splitlines() if line]
    return rows

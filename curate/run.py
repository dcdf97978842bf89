"""Run a recipe: check it, build the Beam pipeline, show progress, then write stats.json and manifest.json.

The driver does no per-document work; it only resolves inputs up front (so a typo fails in a second, not
after an hour on a cluster), polls progress, and assembles the small side files the workers wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from curate import incremental
from curate.config import Config, parse_config
from curate.core.errors import CurateError
from curate.core.files import is_local, write_atomic
from curate.engines.flink_rest import metrics_source
from curate.engines.job_server import engine_runner
from curate.metrics_progress import MetricsProgress
from curate.object_store import configure as configure_object_stores
from curate.pipelines import curation, dedup, token_shards
from curate.pipelines.accounting import assemble_stats
from curate.pipelines.dedup import index_settings
from curate.pipelines.dedup_index import INDEX_META, merge_meta, set_version_label, set_version_resolver
from curate.pipelines.progress import PROGRESS_ENV
from curate.pipelines.readers import InputUnit, record_ranges
from curate.pipelines.runner import pipeline_options
from curate.preflight import preflight
from curate.publish import discard, output_lock, publish, staging_path
from curate.report import write_report
from curate.shards import write_manifest
from curate.versions import parse_spec, resolve_data
from curate.versions.lineage import check_commit_target, commit_run
from curate.worker_paths import absolute_local_paths, check_workers_can_reach


@dataclass
class RunSummary:
    output: str
    stats: dict[str, Any]
    reports: list[dict[str, Any]] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    commit: str | None = None

    @property
    def documents_read(self) -> int:
        return self.stats["stages"]["read"]["in"]

    @property
    def documents_kept(self) -> int:
        return self.stats["documents_kept"]

    @property
    def tokens(self) -> int:
        return sum(shard["n_tokens"] for shard in self.shards)


def _is_local(path: str) -> bool:
    return "://" not in path


def _clear_work(layout: Any) -> None:
    if FileSystems.exists(layout.work):
        FileSystems.delete([_folder(layout.work)])


def _folder(path: str) -> str:
    """A folder as Beam's filesystems delete it whole: object stores need the trailing '/'."""
    return path if is_local(path) else path.rstrip("/") + "/"


def _clear_previous_outputs(layout: Any) -> None:
    """A run replaces its output folder's results; stale shards must never mix with new ones."""
    for pattern in ("documents/*", "rejected/*", "shards/*", ".work/*", "index/*/*", "index/*"):
        matches = FileSystems.match([layout.path(pattern)])[0].metadata_list
        files = [m.path for m in matches if not (_is_local(m.path) and os.path.isdir(m.path))]
        if files:
            FileSystems.delete(files)
    for name in ("stats.json", "manifest.json", "tokenizer.json", "lineage.json", "report.html"):
        if FileSystems.exists(layout.path(name)):
            FileSystems.delete([layout.path(name)])


PLAN_FILE = "_plan.json"  # beside the workers' progress files: the stage order, for progress displays


class _Progress:
    """Prints 'read N · kept M · R docs/s' from the workers' progress files while the run goes."""

    def __init__(self, directory: str, stream: TextIO):
        self._directory = directory
        self._stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._start = time.monotonic()
        self._interactive = stream.isatty()
        self._last_line = ""

    def _totals(self) -> tuple[int, int]:
        read = kept = 0
        for name in os.listdir(self._directory):
            if name.endswith(".json") and name != PLAN_FILE:
                try:
                    with open(os.path.join(self._directory, name)) as handle:
                        counts = json.load(handle)
                except (OSError, ValueError):
                    continue
                read += counts.get("read", 0)
                kept += counts.get("kept", 0)
        return read, kept

    def _show(self) -> None:
        read, kept = self._totals()
        elapsed = time.monotonic() - self._start
        line = f"  read {read:,} records · kept {kept:,} · {read / max(elapsed, 1e-9):,.0f} records/s"
        if line != self._last_line and read:
            end = "\r" if self._interactive else "\n"
            print(line.ljust(70), end=end, file=self._stream, flush=True)
            self._last_line = line

    def _loop(self) -> None:
        interval = 0.5 if self._interactive else 5.0
        while not self._stop.wait(interval):
            self._show()

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._show()  # the final counts (workers flush at bundle end), however short the run
        if self._interactive and self._last_line:
            print(file=self._stream)


@dataclass
class _Plan:
    """What this invocation will do: the new inputs in segments, and what the folder already holds."""

    root: str
    files: list[str]
    key: str
    lineage: dict[str, Any] | None
    segments: list[list[dict[str, Any]]]
    skipped: int  # inputs already in the appended version
    label: str  # how this run's own earlier parts are named in `dup_version`

    def finished(self, segment: list[dict[str, Any]]) -> bool:
        done = incremental.done_inputs(self.lineage, plan=self.key)
        return bool(segment) and all(incremental.input_key(entry) in done for entry in segment)


def _plan(config: Config, files: list[str], append: str | None) -> _Plan:
    """Identify the inputs, prepare the output folder (fresh, resumed, or a checkout of the appended
    version) and cut what is left to do into segments."""
    root = config.output.path
    if not _is_local(root):
        if append or incremental.segment_limits(config) != (None, None):
            raise CurateError(f"{root}: segments and --append need a local output folder")
        _clear_previous_outputs(curation.Layout(root))
        return _Plan(root, files, "", None, [[]], 0, root)
    os.makedirs(root, exist_ok=True)
    inputs = [incremental.identify(path) for path in files]
    key = incremental.plan_key(config, inputs, append)
    lineage = incremental.read_lineage(root)
    plan = (lineage or {}).get("plan") or {}
    if append:
        _clear_previous_outputs(curation.Layout(root))
        _copy_tree(str(resolve_data(append)), root)
        lineage = incremental.lineage_of_version(root)
    elif plan.get("key") == key and not plan.get("complete"):  # the same command, killed before: resume
        incremental.remove_unfinished(root, lineage)
        _clear_work(curation.Layout(root))
    else:
        _clear_previous_outputs(curation.Layout(root))
        lineage = None
    before = {  # files (whole, or cut in ranges: a finished version has read all of them) read before
        incremental.file_key(entry)
        for part in (lineage or {}).get("parts", [])
        if part.get("plan") != key
        for entry in part["inputs"]
    }
    todo = [entry for entry in inputs if incremental.file_key(entry) not in before]
    segments = incremental.plan_segments(todo, *incremental.segment_limits(config), split=_record_ranges)
    label = f"{config.output.dataset}@{config.output.branch}" if config.output.dataset else root
    return _Plan(root, files, key, lineage, segments, len(inputs) - len(todo), label)


def _size(path: str) -> int:
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def _record_ranges(path: str, size: int, max_bytes: int) -> list[tuple[int, int]] | None:
    """A big WARC.gz input cut at records, so that one file cannot outgrow a segment's memory bound."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        return record_ranges(raw, path, size, max_bytes)


def run(
    config: Config, progress: bool = True, stream: TextIO | None = None, append: str | None = None
) -> RunSummary:
    """Run the recipe to completion and return its summary; raises CurateError on a problem the user
    can fix (bad input path, stage not available, unwritable output).

    Inputs are processed in segments (README "Incremental runs"), each a pipeline whose output joins
    the folder and is committed when done. ``append`` (``NAME@BRANCH``) starts from that version: its
    inputs are skipped, new documents are deduplicated against it, and the result is committed on it.
    """
    started = time.monotonic()
    configure_object_stores(config.storage)  # before the first s3:// or gs:// path is matched
    config = absolute_local_paths(config)
    check_workers_can_reach(config)
    if append:
        dataset, branch = parse_spec(append)
        output = config.output.model_copy(update={"dataset": dataset, "branch": branch})
        config = config.model_copy(update={"output": output})
    set_version_resolver(resolve_data)  # `against: [NAME@REF]` are versions of the store
    files = preflight(config)  # nothing has been touched yet: a problem here costs nothing
    curation.enabled_stages(config)  # fail now, before any worker starts, on a stage's bad config
    if config.output.dataset:
        check_commit_target(config)  # a missing repository or bad credentials fail now, not after the run
    root = config.output.path.rstrip("/") or config.output.path
    with output_lock(root):
        if _is_local(root):
            os.makedirs(root, exist_ok=True)
        # Every part of the run is written in OUT/.staging and replaces the previous results only when
        # the whole run has succeeded; a killed segmented run resumes from what it staged.
        staged = config.model_copy(deep=True)
        staged.output.path = staging_path(root)
        plan = _plan(staged, files, append)
        if plan.label == plan.root:  # later segments name the output folder, not its staging, in dup_version
            set_version_label(plan.root, root)
        log_path = os.path.join(root if _is_local(root) else tempfile.gettempdir(), "run.log")
        with _worker_logs_to(log_path) as console:
            stream = stream or console
            say = (lambda line: print(line, file=stream, flush=True)) if progress else (lambda line: None)
            skipped = f"; {plan.skipped} already in {append}, skipped" if append else ""
            say(
                f"curate: {len(files)} input file(s){skipped} -> {root} on the {config.runner.name} runner"
                f" (Beam's log: {log_path})"
            )
            try:
                summary = _run_segments(staged, plan, append, progress, stream, log_path, say)
            except BaseException:
                if len(plan.segments) <= 1 and not append:  # nothing a rerun could resume from
                    with contextlib.suppress(Exception):
                        discard(plan.root)
                raise
            publish(plan.root, root)
            summary.output = root
            if config.output.dataset and not _is_local(root):
                summary.commit = _commit_published(config, root, files, summary.stats)
            summary.seconds = time.monotonic() - started
            say(format_summary(summary))
    if not is_local(root):
        with open(log_path, "rb") as handle:
            log = handle.read()
        if log:  # Beam's S3 uploader cannot create an empty object; an empty log says nothing anyway
            write_atomic(f"{root.rstrip('/')}/run.log", log)
    return summary


def _run_segments(
    config: Config, plan: _Plan, append: str | None, progress: bool, stream: TextIO, log_path: str, say: Any
) -> RunSummary:
    """Each segment not finished before, as one pipeline whose part joins the staged folder."""
    if not plan.segments:
        say(f"curate: no new input files; the output is {append} as it was")
        return _summary_of(plan.root, plan.lineage, 0.0)
    summary = None
    for number, segment in enumerate(plan.segments, 1):
        name = f"segment {number}/{len(plan.segments)} ({len(segment)} file(s))"
        if plan.finished(segment):
            say(f"curate: {name}: finished before, skipped")
            continue
        if len(plan.segments) > 1:
            say(f"curate: {name}")
        summary = _run_part(config, plan, segment, number == len(plan.segments), progress, stream, log_path)
        plan.lineage = incremental.read_lineage(plan.root)
    if summary is None:  # every segment had finished before: the plan is complete now
        assert plan.lineage is not None
        plan.lineage["plan"]["complete"] = True
        incremental.write_lineage(plan.root, plan.lineage)
        summary = _summary_of(plan.root, plan.lineage, 0.0)
    return summary


def _run_part(
    config: Config,
    plan: _Plan,
    segment: list[dict[str, Any]],
    complete: bool,
    progress: bool,
    stream: TextIO,
    log_path: str,
) -> RunSummary:
    """One segment as one pipeline, written beside the folder's finished parts, then finalized."""
    parts = (plan.lineage or {}).get("parts", [])
    layout = curation.Layout(
        plan.root, part=incremental.part_name(len(parts)), first_shard=incremental.next_shard(plan.lineage)
    )
    part_config = _part_config(config, plan.root, plan.label) if parts else config
    entries = segment or [{"path": path, "size": _size(path)} for path in plan.files]
    paths = incremental.read_units(entries, _record_ranges)
    started = time.monotonic()
    try:
        order = _run_pipeline(part_config, paths, layout, progress, stream)
    except Exception as error:
        with contextlib.suppress(OSError):  # the log's disk may be the one that is full
            traceback.print_exc()  # fd 2 is the log file here
        if isinstance(error, CurateError) and "[while running" not in str(error):
            raise
        raise CurateError(_worker_error(error, log_path)) from error
    seconds = time.monotonic() - started
    return _finalize(config, layout, order, seconds, plan.lineage, segment, plan.key, complete)


def _part_config(config: Config, root: str, label: str) -> Config:
    """A later part's recipe: deduplicated against the folder so far, with its tokenizer."""
    data = config.model_dump(mode="json")
    stages = data["stages"]
    if os.path.isfile(os.path.join(root, "index", "index.json")):
        for name in ("dedup_exact", "dedup_minhash"):
            if stages[name]["enabled"] and label not in stages[name]["against"]:
                stages[name]["against"].append(label)
    if stages["tokenize"]["enabled"] and stages["tokenize"]["train"] is not None:
        # A trained tokenizer is trained once, by the first part; the later parts reuse it.
        keep = os.path.join(tempfile.mkdtemp(prefix="curate-tokenizer-"), "tokenizer.json")
        shutil.copyfile(os.path.join(root, "tokenizer.json"), keep)
        stages["tokenize"].update(tokenizer=keep, train=None)
    return parse_config(data, "the recipe of a later segment")


def _copy_tree(source: str, dest: str) -> None:
    """A checked-out version into the output folder: copies (never hard links, which would let an edit of
    the output change the store's cached checkout)."""
    for folder, _, names in os.walk(source):
        for name in names:
            relative = os.path.relpath(os.path.join(folder, name), source)
            if relative == "run.log":
                continue
            target = os.path.join(dest, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.exists(target):
                os.remove(target)
            shutil.copyfile(os.path.join(folder, name), target)


def _summary_of(root: str, lineage: dict[str, Any] | None, seconds: float) -> RunSummary:
    stats = json.loads(Path(os.path.join(root, "stats.json")).read_text(encoding="utf-8"))
    shards = [shard for part in (lineage or {}).get("parts", []) for shard in part["shards"]]
    return RunSummary(root, stats, [], shards, seconds)


def _worker_error(error: Exception, log_path: str) -> str:
    """One line for a failure inside a worker: a CurateError raised there (a model or list file that a
    stage could not open) reads as if raised here; anything else names its last line and the log."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    last = lines[-1]
    # In worker processes the error arrives as text ("...CurateError: msg"); in-process, as itself.
    prefix = "" if isinstance(error, CurateError) else r".*?CurateError: "
    user_error = re.search(prefix + r"(.*?)(?: \[while running '([^/']+)[^']*'\])?$", last)
    if user_error:
        stage = f" (stage {user_error.group(2)})" if user_error.group(2) else ""
        return f"{user_error.group(1)}{stage}"
    return f"the pipeline failed: {last} (traceback in {log_path})"


@contextlib.contextmanager
def _worker_logs_to(path: str) -> Iterator[TextIO]:
    """Send everything written to file descriptor 2 (Beam's and its worker processes' logs) to ``path``
    while the run lasts, and hand back a stream to the real console for progress and the summary."""
    sys.stderr.flush()
    saved = os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log_fd, 2)
    console = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield console
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_fd)
        console.close()


def _run_pipeline(
    config: Config, files: list[InputUnit], layout: Any, progress: bool, stream: TextIO
) -> list[str]:
    # A caller that watches progress (curate serve) names the folder; otherwise a fresh temporary one.
    progress_dir = os.environ.get(PROGRESS_ENV) or tempfile.mkdtemp(prefix="curate-progress-")
    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = progress_dir
    temp_location = layout.path(".work", "beam-temp")
    # Workers in this process or its children write progress files; any other runner reports metrics.
    from_files = progress and not config.runner.workers_are_elsewhere
    from_metrics = progress and config.runner.name != "direct"
    try:
        with (
            _Progress(progress_dir, stream) if from_files else contextlib.nullcontext(),
            engine_runner(config.runner) as runner,  # flink/spark: Beam's job server for the engine
        ):
            options = pipeline_options(runner, temp_location, config.storage)
            pipeline = beam.Pipeline(options=options)
            order = curation.build(pipeline, config, files, layout)
            _write_json(os.path.join(progress_dir, PLAN_FILE), {"stages": order, "files": len(files)})
            result = pipeline.run()
            metrics = MetricsProgress(result, order, stream, source=metrics_source(config.runner))
            with metrics if from_metrics else contextlib.nullcontext():
                result.wait_until_finish()
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous
    return order


def _finalize(
    config: Config,
    layout: Any,
    order: list[str],
    seconds: float,
    lineage: dict[str, Any] | None,
    inputs: list[dict[str, Any]],
    plan_key: str,
    complete: bool,
) -> RunSummary:
    """A finished part joins the folder: stats.json (summed over parts), manifest.json (every part's
    shards), the index settings and, last, lineage.json; then the folder is committed."""
    rows = [tuple(row) for row in curation.read_json_lines(layout.path(".work", curation.STATS_FILE))]
    stages = assemble_stats(rows, order)
    last = stages[order[-1]]
    total_rejected = sum(sum(entry["rejected"].values()) for entry in stages.values())
    reports = curation.read_json_lines(layout.path(".work", curation.REPORTS_FILE))
    shards = sorted(
        curation.read_json_lines(layout.path(".work", curation.SHARDS_FILE)), key=lambda s: s["path"]
    )
    part_stats = {
        "stages": stages,
        "documents_read": stages["read"]["in"],
        "documents_kept": last["out"],
        "documents_rejected": total_rejected,
        "balanced": all(entry["balanced"] for entry in stages.values())
        and stages["read"]["in"] == last["out"] + total_rejected,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(_cpu_seconds(), 2),
    }
    for report in reports:
        part_stats[report.get("kind", "report")] = {k: v for k, v in report.items() if k != "kind"}
    if not part_stats["balanced"]:
        raise CurateError(f"{layout.root}: document accounting does not balance: {json.dumps(stages)}")
    manifest_keys = ("path", "n_docs", "n_tokens", "sha256", "bytes", "row_groups", "domains")
    part = {
        "part": layout.part,
        "plan": plan_key,
        "inputs": inputs,
        "shards": [{k: s[k] for k in manifest_keys if k in s} for s in shards],
        "stats": part_stats,
    }
    parts = [*(lineage or {}).get("parts", []), part]
    stats = incremental.merge_stats([p["stats"] for p in parts])
    _write_json(layout.path("stats.json"), stats)
    if config.stages.of(token_shards.STAGE).enabled:
        earlier = [shard for p in parts[:-1] for shard in p["shards"]]
        write_manifest(layout.root, [*earlier, *shards], config, stats)
    settings = index_settings(config.stages.of(dedup.EXACT_STAGE), config.stages.of(dedup.MINHASH_STAGE))
    if settings:
        meta_path = layout.path("index", INDEX_META)
        existing = (
            json.loads(Path(meta_path).read_text(encoding="utf-8"))
            if _is_local(meta_path) and os.path.isfile(meta_path)
            else None
        )
        _write_json(meta_path, merge_meta(existing, settings, layout.root))
    FileSystems.delete([_folder(layout.work)])
    if _is_local(layout.root):
        plan = {"key": plan_key, "complete": complete}
        incremental.write_lineage(layout.root, {"format": incremental.FORMAT, "plan": plan, "parts": parts})
    _write_report(layout.root, config)
    all_shards = [shard for p in parts for shard in p["shards"]]
    summary = RunSummary(layout.root, stats, reports, all_shards, seconds)
    if config.output.dataset and _is_local(layout.root):
        # Only now, with every shard written and checksummed in the manifest, does the version exist.
        # (An object-store output is committed once published, from its final place: see `run`.)
        summary.commit = commit_run(config, layout.root, [entry["path"] for entry in inputs], stats)
    return summary


def _commit_published(config: Config, root: str, files: list[str], stats: dict[str, Any]) -> str:
    """Commit an object-store output from where it was published (so lakeFS can import the objects in
    place: staged objects are moved, which would leave an import pointing at nothing)."""
    try:
        return commit_run(config, root, files, stats)
    except CurateError as error:
        raise CurateError(
            f"{error} (the run's output is published at {root}; commit it later with `curate versions commit"
            f" {root} {config.output.dataset}`)"
        ) from None


def _cpu_seconds() -> float:
    """CPU time of the driver and its finished worker processes (user + system)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _write_report(root: str, config: Config) -> None:
    """OUT/report.html (before any commit, so a version carries its report); a report that cannot be
    built costs the run nothing but a warning, since every output it describes is already written."""
    try:
        write_report(root, config)
    except Exception as error:  # noqa: BLE001 (reported, and the run's outputs stand)
        print(f"curate: warning: report.html not written: {error}", file=sys.stderr)


def _write_json(path: str, data: Any) -> None:
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def format_summary(summary: RunSummary) -> str:
    """The end-of-run report: counts per stage and reason, tokens written, where the output is."""
    stats = summary.stats
    lines = [f"curate: done in {summary.seconds:.1f}s"]
    lines.append(f"  {'stage':<14}{'in':>10}{'out':>10}  rejected")
    for name, entry in stats["stages"].items():
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in entry["rejected"].items()) or "-"
        lines.append(f"  {name:<14}{entry['in']:>10,}{entry['out']:>10,}  {reasons}")
    unreadable = stats["stages"]["read"]["rejected"].get("unreadable", 0)
    if unreadable:
        lines.append(f"  WARNING: {unreadable:,} unreadable record(s); see rejected/ (column read_error)")
    lines.append(
        f"  kept {stats['documents_kept']:,} of {stats['documents_read']:,} documents"
        + (f"; {summary.tokens:,} tokens in {len(summary.shards)} shard(s)" if summary.shards else "")
    )
    for report in summary.reports:
        for line in report.get("console", []):
            lines.append(f"  {line}")
    lines.append(f"  output: {summary.output} (documents/ rejected/ shards/ stats.json manifest.json)")
    if summary.commit:
        lines.append(f"  committed: {summary.commit}")
    return "\n".join(lines)

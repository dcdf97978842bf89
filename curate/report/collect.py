"""What a run report shows, gathered from a run's output folder without loading documents as objects.

Counts come from `stats.json` and `manifest.json`; histograms, languages, duplicate clusters and text
sizes are computed column by column from the Parquet files in `documents/` and `rejected/` with
pyarrow.compute, one row group at a time, so memory stays bounded by a row group whatever the run's size.
Works on any filesystem Beam knows (local, gs://, s3://).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from curate.core.config import Signal
from curate.core.errors import CurateError
from curate.pipelines.stage_order import ALL_STAGES

BINS = 40
SAMPLES_PER_REASON = 3
SAMPLE_CHARS = 400
# How each numeric annotation is drawn, as its stage declares it (`StageDef.signals`), with the stage's
# name: thresholds are keys of that stage's config. An undeclared numeric column is drawn plainly.
SIGNALS: dict[str, tuple[str, Signal]] = {
    signal.name: (stage.name, signal) for stage in ALL_STAGES for signal in stage.signals
}
NOT_SIGNALS = {name for name, (_, signal) in SIGNALS.items() if not signal.chart}
LOG_SIGNALS = {name for name, (_, signal) in SIGNALS.items() if signal.log}
# Columns of every written document that are not annotations.
DOCUMENT_FIELDS = {"id", "url", "text", "source", "stage", "reason", "read_error", "domain", "metadata",
                   "other_annotations"}  # fmt: skip
# Words of a rejection reason that say nothing about which signal rejected (gopher_below_alpha_threshold).
REASON_FILLER = {"below", "above", "threshold", "too", "many", "few", "ratio", "frac", "char", "min", "max"}


@dataclass
class Histogram:
    signal: str
    edges: list[float]  # BINS + 1 edges, in log10 units when ``log``
    kept: list[int]
    rejected: list[int]  # documents rejected by ``rejected_by`` only (later stages' rejects carry it too)
    log: bool = False
    thresholds: list[float] = field(default_factory=list)
    rejected_by: str | None = None  # the stage whose decision this signal explains
    constant: float | None = None  # the one value every document has (then there is nothing to draw)


@dataclass
class ReportData:
    root: str
    stats: dict[str, Any]
    manifest: dict[str, Any] | None
    config: dict[str, Any] | None
    histograms: list[Histogram]
    languages: dict[str, list[int]]  # lang -> [kept, rejected]
    cluster_sizes: dict[int, int]  # duplicate cluster size -> clusters of that size
    chars: dict[str, int]  # "kept" and each rejecting stage -> characters of text
    kept_tokens: int | None
    samples: dict[str, list[dict[str, Any]]]  # "kept" or "stage / reason" -> a few documents
    documents_in_parquet: int = 0


# ------------------------------------------------------------------------------------------ files


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def _read_json(path: str) -> dict[str, Any] | None:
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        try:
            return json.loads(handle.read().decode("utf-8"))
        except ValueError as error:
            raise CurateError(f"{path}: not valid JSON ({error}); re-run `curate run`") from None


def _parquet_files(root: str, sub: str) -> list[str]:
    matches = FileSystems.match([_join(root, sub, "*.parquet")])[0].metadata_list
    return sorted(m.path for m in matches)


def _row_groups(paths: list[str], columns: list[str]) -> Iterator[pa.Table]:
    """Each row group of each file, only ``columns`` that the file has."""
    for path in paths:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            parquet = pq.ParquetFile(handle)
            present = [c for c in columns if c in parquet.schema_arrow.names]
            if not present:
                continue
            for group in range(parquet.num_row_groups):
                yield parquet.read_row_group(group, columns=present)


def _schema(paths: list[str]) -> pa.Schema | None:
    for path in paths:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            return pq.ParquetFile(handle).schema_arrow
    return None


# ------------------------------------------------------------------------------------- histograms


def _signal_columns(schemas: list[pa.Schema | None], numeric_only: bool = True) -> list[str]:
    """Annotation columns: numeric ones are the signals drawn; with text ones (lang, dup_of), what a
    rejected sample shows beside its text."""
    names: dict[str, None] = {}
    for schema in schemas:
        for field_ in schema or []:
            numeric = pa.types.is_integer(field_.type) or pa.types.is_floating(field_.type)
            text = pa.types.is_string(field_.type) and field_.name not in DOCUMENT_FIELDS
            if (numeric or (text and not numeric_only)) and field_.name not in NOT_SIGNALS:
                names[field_.name] = None
    return list(names)


def _values(column: pa.ChunkedArray, log: bool) -> pa.Array:
    values = pc.drop_null(pc.cast(column, pa.float64()))
    values = pc.filter(values, pc.is_finite(values))
    if log:
        values = pc.log10(pc.filter(values, pc.greater(values, 0)))
    return values


def _owners(
    rejected: list[str], signals: list[str], order: list[str], config: dict[str, Any] | None
) -> dict[str, str]:
    """signal -> the stage whose rejections it explains. A rejected document carries the annotations of
    every stage up to the one that rejected it, so the first stage (in run order) whose rejected
    documents have values of a signal is the stage that wrote it; a thresholded signal names its stage in
    its threshold's recipe key. Documents rejected by other stages are not this signal's rejections."""
    declared = {signal: stage for signal, (stage, declared) in SIGNALS.items() if declared.thresholds}
    stages_config = (config or {}).get("stages", {})
    seen: dict[str, set[str]] = {}
    for table in _row_groups(rejected, [*signals, "stage"]):
        if "stage" not in table.column_names:
            continue
        for stage in pc.unique(table["stage"]).to_pylist():
            rows = table.filter(pc.equal(table["stage"], stage))
            for name in table.column_names:
                if name != "stage" and rows[name].null_count < len(rows):
                    seen.setdefault(name, set()).add(stage)
    rank = {stage: index for index, stage in enumerate(order)}
    owners = {name: min(stages, key=lambda s: rank.get(s, len(rank))) for name, stages in seen.items()}
    for signal, stage in declared.items():
        if signal in signals and stages_config.get(stage, {}).get("enabled", True):
            owners[signal] = stage
    return owners


def _side_tables(sides: dict[str, list[str]], columns: list[str]) -> Iterator[tuple[str, pa.Table]]:
    for side, paths in sides.items():
        for table in _row_groups(paths, [*columns, "stage"] if side == "rejected" else columns):
            yield side, table


def _owned(table: pa.Table, name: str, side: str, owners: dict[str, str]) -> pa.ChunkedArray | None:
    """A row group's values of ``name``: all kept documents, or those rejected by the signal's stage."""
    if side == "kept":
        return table[name]
    if name not in owners or "stage" not in table.column_names:
        return None
    return table[name].filter(pc.equal(table["stage"], owners[name]))


def _ranges(
    sides: dict[str, list[str]], signals: list[str], owners: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """First pass: min and max of every signal over what its histogram shows, for shared bin edges."""
    ranges: dict[str, tuple[float, float]] = {}
    for side, table in _side_tables(sides, signals):
        for name in table.column_names:
            column = _owned(table, name, side, owners) if name != "stage" else None
            if column is None:
                continue
            values = _values(column, name in LOG_SIGNALS)
            if len(values) == 0:
                continue
            extremes = pc.min_max(values)
            low, high = extremes["min"].as_py(), extremes["max"].as_py()
            if name in ranges:
                low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
            ranges[name] = (low, high)
    return ranges


def _bin_counts(values: pa.Array, low: float, width: float) -> np.ndarray:
    counts = np.zeros(BINS, dtype=np.int64)
    if len(values) == 0:
        return counts
    index = pc.floor(pc.divide(pc.subtract(values, low), width))
    index = pc.cast(pc.min_element_wise(pc.max_element_wise(index, 0.0), float(BINS - 1)), pa.int64())
    tallies = pc.value_counts(index)
    counts[tallies.field("values").to_numpy()] += tallies.field("counts").to_numpy()
    return counts


def _thresholds(signal: str, config: dict[str, Any] | None, log: bool) -> list[float]:
    found = []
    stage, declared = SIGNALS.get(signal, ("", Signal(signal)))
    for dotted in declared.thresholds:
        node: Any = (config or {}).get("stages", {}).get(stage)
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, int | float) and not isinstance(node, bool):
            if log and node <= 0:
                continue
            found.append(math.log10(node) if log else float(node))
    return found


def histograms(
    sides: dict[str, list[str]], config: dict[str, Any] | None, signals: list[str], owners: dict[str, str]
) -> list[Histogram]:
    ranges = _ranges(sides, signals, owners)
    counts = {(name, side): np.zeros(BINS, dtype=np.int64) for name in ranges for side in sides}
    constant = {name: low for name, (low, high) in ranges.items() if high == low}
    # A signal with one value everywhere is not drawn; its unit-wide range only keeps the arithmetic sane.
    ranges = {
        name: (low, high) if high > low else (low - 0.5, low + 0.5) for name, (low, high) in ranges.items()
    }
    widths = {name: (high - low) / BINS for name, (low, high) in ranges.items()}
    for side, table in _side_tables(sides, list(ranges)):
        for name in table.column_names:
            column = _owned(table, name, side, owners) if name in ranges else None
            if column is not None:
                values = _values(column, name in LOG_SIGNALS)
                counts[(name, side)] += _bin_counts(values, ranges[name][0], widths[name])
    result = []
    for name in signals:
        if name not in ranges:
            continue  # never computed in this run (a disabled stage's column)
        low, log = ranges[name][0], name in LOG_SIGNALS
        edges = [low + i * widths[name] for i in range(BINS + 1)]
        value = constant.get(name)
        result.append(
            Histogram(
                name,
                edges,
                counts[(name, "kept")].tolist(),
                counts[(name, "rejected")].tolist(),
                log,
                _thresholds(name, config, log),
                owners.get(name),
                None if value is None else (10**value if log else value),
            )
        )
    return result


# ------------------------------------------------------------------------ categories and text sizes


def _add_counts(target: dict[Any, int], column: pa.ChunkedArray) -> None:
    tallies = pc.value_counts(pc.drop_null(column))
    for value, count in zip(
        tallies.field("values").to_pylist(), tallies.field("counts").to_pylist(), strict=True
    ):
        target[value] = target.get(value, 0) + count


def languages(sides: dict[str, list[str]]) -> dict[str, list[int]]:
    per_side: dict[str, dict[str, int]] = {side: {} for side in sides}
    for side, paths in sides.items():
        for table in _row_groups(paths, ["lang"]):
            _add_counts(per_side[side], table["lang"])
    langs = set(per_side["kept"]) | set(per_side["rejected"])
    rows = {lang: [per_side["kept"].get(lang, 0), per_side["rejected"].get(lang, 0)] for lang in langs}
    return dict(sorted(rows.items(), key=lambda item: -sum(item[1])))


def cluster_sizes(sides: dict[str, list[str]]) -> dict[int, int]:
    """Documents carry their cluster's size; a cluster of size s shows up as s documents."""
    documents: dict[int, int] = {}
    for paths in sides.values():
        for table in _row_groups(paths, ["dup_cluster_size"]):
            _add_counts(documents, table["dup_cluster_size"])
    return {size: count // size for size, count in sorted(documents.items()) if size > 0}


def text_sizes(sides: dict[str, list[str]]) -> tuple[dict[str, int], int | None]:
    """Characters of text kept and rejected per stage, and the kept documents' token count."""
    chars: dict[str, int] = {"kept": 0}
    tokens: int | None = None
    for table in _row_groups(sides["kept"], ["text", "n_tokens"]):
        if "text" in table.column_names:
            chars["kept"] += pc.sum(pc.utf8_length(table["text"])).as_py() or 0
        if "n_tokens" in table.column_names:
            tokens = (tokens or 0) + (pc.sum(table["n_tokens"]).as_py() or 0)
    for table in _row_groups(sides["rejected"], ["text", "stage"]):
        if "text" not in table.column_names or "stage" not in table.column_names:
            continue
        lengths = pa.table({"stage": table["stage"], "chars": pc.utf8_length(table["text"])})
        for row in lengths.group_by("stage").aggregate([("chars", "sum")]).to_pylist():
            chars[row["stage"]] = chars.get(row["stage"], 0) + (row["chars_sum"] or 0)
    return chars, tokens


def _excerpt(row: dict[str, Any], owned: Sequence[str] = ()) -> dict[str, Any]:
    text = row.get("text") or ""
    return {
        "id": row.get("id"),
        "url": row.get("url"),
        "text": text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS else ""),
        "read_error": row.get("read_error"),
        "values": {name: row[name] for name in owned if row.get(name) is not None},
    }


def _explaining(reason: str, stage: str, owned: list[str]) -> list[str]:
    """The annotations of the rejecting stage that a reason refers to: the one it names
    (`gopher_dup_line_frac`), extends (`gopher_top_4gram` -> `gopher_top_4gram_char_frac`) or shares a
    word with (`gopher_below_alpha_threshold` -> `gopher_alpha_words_ratio`); all of a stage's few
    when the reason is the stage's own name (langid -> lang, lang_score)."""
    if reason == stage:
        return owned if len(owned) <= 4 else []
    named = [name for name in owned if name.startswith(reason) or reason.startswith(name)]
    if named:
        return named
    words = set(reason.split("_")[1:]) - REASON_FILLER
    shared = [name for name in owned if words & set(name.split("_")[1:])]
    return shared or (owned if len(owned) <= 4 else [])


def samples(
    sides: dict[str, list[str]], stats: dict[str, Any], owners: dict[str, str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """A few documents per rejection reason and kept; reading stops once every reason has its few. A
    rejected one comes with the values its stage annotated (what rejected it: lang_score 0.61, ...)."""
    owned_by: dict[str, list[str]] = {}
    for name, stage in (owners or {}).items():
        owned_by.setdefault(stage, []).append(name)
    wanted = {
        f"{stage} / {reason}"
        for stage, entry in stats.get("stages", {}).items()
        for reason, n in entry.get("rejected", {}).items()
        if n
    }
    found: dict[str, list[dict[str, Any]]] = {"kept": []}
    columns = ["id", "url", "text", "read_error"]
    for table in _row_groups(sides["kept"], columns):
        found["kept"] += [_excerpt(row) for row in table.slice(0, SAMPLES_PER_REASON).to_pylist()]
        if len(found["kept"]) >= SAMPLES_PER_REASON:
            break
    found["kept"] = found["kept"][:SAMPLES_PER_REASON]
    annotated = sorted({name for names in owned_by.values() for name in names})
    for table in _row_groups(sides["rejected"], [*columns, "stage", "reason", *annotated]):
        keys = pc.binary_join_element_wise(table["stage"], table["reason"], " / ")
        for key in pc.unique(keys).to_pylist():
            have = found.setdefault(key, [])
            if len(have) >= SAMPLES_PER_REASON:
                continue
            rows = table.filter(pc.equal(keys, key)).slice(0, SAMPLES_PER_REASON - len(have))
            have += [_excerpt(row, _explaining(row["reason"], row["stage"], owned_by.get(row["stage"], [])))
                     for row in rows.to_pylist()]  # fmt: skip
        if all(len(found.get(key, [])) >= SAMPLES_PER_REASON for key in wanted):
            break
    return found


# -------------------------------------------------------------------------------------------- all


def collect(root: str, config: dict[str, Any] | None = None) -> ReportData:
    """Everything the report shows for the run in ``root``; ``config`` defaults to the manifest's."""
    stats = _read_json(_join(root, "stats.json"))
    if stats is None:
        raise CurateError(f"{root}: no stats.json; pass the output folder of a finished `curate run`")
    manifest = _read_json(_join(root, "manifest.json"))
    if config is None and manifest is not None:
        config = manifest.get("config")
    sides = {"kept": _parquet_files(root, "documents"), "rejected": _parquet_files(root, "rejected")}
    chars, kept_tokens = text_sizes(sides)
    schemas = [_schema(paths) for paths in sides.values()]
    signals = _signal_columns(schemas)
    annotations = _signal_columns(schemas, numeric_only=False)
    owners = _owners(sides["rejected"], annotations, list(stats.get("stages", {})), config)
    return ReportData(
        root=root,
        stats=stats,
        manifest=manifest,
        config=config,
        histograms=histograms(sides, config, signals, owners),
        languages=languages(sides),
        cluster_sizes=cluster_sizes(sides),
        chars=chars,
        kept_tokens=kept_tokens,
        samples=samples(sides, stats, owners),
    )

"""Incremental runs: what an output folder remembers of the runs that made it (``lineage.json``), which
inputs are new, how they are cut into segments, and how a finished segment joins the folder.

A run's output is a sequence of *parts*, each the result of one Beam pipeline over some input files:
a plain run is one part (files named ``part-*``, shards from 0), a segmented run one part per segment,
``--append`` adds parts to a checked-out version. ``lineage.json`` lists the finished parts with their
inputs (path, size, checksum), shards and stats; it is written last, so it is what a resumed run
trusts: files of an unfinished part are deleted and that part runs again. manifest.json and stats.json
are derived from it (all parts' shards; stats summed over parts).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from curate.core.config import Role
from curate.core.errors import CurateError
from curate.core.files import identify, is_local, write_atomic
from curate.pipelines import token_shards
from curate.pipelines.curation import Layout
from curate.pipelines.dedup_index import INDEX_DIR, INDEX_META
from curate.pipelines.readers import record_ranges
from curate.pipelines.recipe import Config
from curate.pipelines.stage_order import DOCUMENT_STAGES

LINEAGE = "lineage.json"
# The parts record of an output folder (lineage.json); a version's own lineage is versions/lineage.py's.
FORMAT = "curate.parts/1"
_FORMERLY = "curate.lineage/1"  # what folders written before the rename carry
# Segment size on Beam's local runner when the recipe sets none: every shuffle's input lives in the
# runner process there, so a segment bounds that process's memory (docs/incremental.md).
DEFAULT_LOCAL_SEGMENT_BYTES = 256 * 1024 * 1024
# An input larger than this is read by several workers, in byte ranges cut at records (WARC.gz).
READ_RANGE_BYTES = 64 * 1024 * 1024
# Sub-folders holding parts' files, named ``<part>-...``.
PART_DIRS = ("documents", "rejected", "index/exact", "index/minhash")


# ------------------------------------------------------------------------------------------- inputs


def file_key(entry: dict[str, Any]) -> tuple[str, int, str]:
    """Which file an input entry is (whole, or the file a byte range is part of)."""
    return entry["path"], entry["size"], entry["checksum"]


def input_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """Which input an entry is: a file, or a byte range of one (a big WARC file cut at records)."""
    return (*file_key(entry), *entry.get("range", ()))


def _extent(entry: dict[str, Any]) -> int:
    start, end = entry.get("range", (0, entry["size"]))
    return end - start


def segment_limits(config: Config) -> tuple[int | None, int | None]:
    """(files, bytes) per segment: the recipe's, else on the local runner writing to a local folder a
    size that bounds memory (segments join a local folder; an object-store output is one pipeline)."""
    run = config.run
    local_output = is_local(config.output.path)
    if (
        run.segment_files is None
        and run.segment_bytes is None
        and config.runner.name == "direct"
        and local_output
    ):
        return None, DEFAULT_LOCAL_SEGMENT_BYTES
    return run.segment_files, run.segment_bytes


# (path, size, byte limit) -> byte ranges cutting that file at record boundaries, or None (see
# readers.record_ranges): lets a file larger than the byte limit be split over several segments.
Splitter = Callable[[str, int, int], list[tuple[int, int]] | None]


def _pieces(entry: dict[str, Any], max_bytes: int, split: Splitter) -> list[dict[str, Any]]:
    ranges = split(entry["path"], entry["size"], max_bytes) if entry["size"] > max_bytes else None
    return [{**entry, "range": [start, end]} for start, end in ranges] if ranges else [entry]


def read_units(
    entries: list[dict[str, Any]], split: Splitter | None, max_bytes: int = READ_RANGE_BYTES
) -> list[str | tuple[str, int, int]]:
    """What the pipeline's readers are given: a path per whole file, ``(path, start, end)`` per range; an
    input (or range) larger than ``max_bytes`` is cut further at records, so that several workers read
    one big file instead of one worker reading all of it."""
    units: list[str | tuple[str, int, int]] = []
    for entry in entries:
        path, size = entry["path"], entry["size"]
        start, end = entry.get("range", (0, size))
        cuts = {start, end}
        if split is not None and end - start > max_bytes:
            cuts |= {cut for cut, _ in split(path, size, max_bytes) or [] if start < cut < end}
        bounds = sorted(cuts)
        if bounds == [0, size]:
            units.append(path)
        else:
            units += [(path, a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    return units


def plan_segments(
    inputs: list[dict[str, Any]],
    max_files: int | None,
    max_bytes: int | None,
    split: Splitter | None = None,
) -> list[list[dict[str, Any]]]:
    """Consecutive groups of the (sorted) inputs, each within both limits; no limits: one segment. A
    file larger than the byte limit is cut into byte ranges by ``split`` when it can be (WARC.gz: at
    record boundaries), each range an input entry of its own (``range: [start, end]``); one that cannot
    be cut is a segment of its own."""
    if split is not None and max_bytes is not None:
        inputs = [piece for entry in inputs for piece in _pieces(entry, max_bytes, split)]
    segments: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for entry in inputs:
        full = (max_files is not None and len(current) >= max_files) or (
            max_bytes is not None and current and size + _extent(entry) > max_bytes
        )
        if full:
            segments.append(current)
            current, size = [], 0
        current.append(entry)
        size += _extent(entry)
    if current:
        segments.append(current)
    return segments


# ------------------------------------------------------------------------------------------ lineage


def read_lineage(root: str) -> dict[str, Any] | None:
    path = os.path.join(root, LINEAGE)
    if not os.path.isfile(path):
        return None
    try:
        lineage = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as error:
        raise CurateError(
            f"{path}: not valid JSON ({error}); delete the output folder and run again"
        ) from None
    if lineage.get("format") == _FORMERLY:
        lineage["format"] = FORMAT
    if lineage.get("format") != FORMAT:
        raise CurateError(f"{path}: format {lineage.get('format')!r}, expected {FORMAT!r}")
    return lineage


def lineage_of_version(root: str) -> dict[str, Any]:
    """The lineage of a checked-out version; a version written before lineage existed is one part whose
    inputs are unknown (nothing will be skipped) and whose shards are its manifest's."""
    lineage = read_lineage(root)
    if lineage is not None:
        return lineage
    manifest_path, stats_path = os.path.join(root, "manifest.json"), os.path.join(root, "stats.json")
    shards = (
        json.loads(Path(manifest_path).read_text(encoding="utf-8"))["shards"]
        if os.path.isfile(manifest_path)
        else []
    )
    stats = json.loads(Path(stats_path).read_text(encoding="utf-8")) if os.path.isfile(stats_path) else {}
    return {
        "format": FORMAT,
        "plan": None,
        "parts": [{"part": "part", "inputs": [], "shards": shards, "stats": stats}],
    }


def write_lineage(root: str, lineage: dict[str, Any]) -> None:
    write_atomic(os.path.join(root, LINEAGE), (json.dumps(lineage, indent=1) + "\n").encode("utf-8"))


def done_inputs(lineage: dict[str, Any] | None, plan: str | None = None) -> set[tuple[str, int, str]]:
    """Inputs of the finished parts (of one plan only, when given)."""
    parts = (lineage or {}).get("parts", [])
    return {
        input_key(e) for part in parts if plan is None or part.get("plan") == plan for e in part["inputs"]
    }


def plan_key(config: Config, inputs: list[dict[str, Any]], append: str | None) -> str:
    """What makes two invocations "the same command" for resuming: the recipe (runner aside, which
    never changes the output), the inputs' identities and the base version."""
    recipe = config.model_dump(mode="json")
    recipe.pop("runner", None)
    body = json.dumps(
        {"recipe": recipe, "inputs": [input_key(i) for i in inputs], "append": append}, sort_keys=True
    )
    return hashlib.sha256(body.encode()).hexdigest()[:20]


def part_name(index: int) -> str:
    """The first part keeps the plain run's names (``part-*``); later ones are ``s0001-*``, ..."""
    return "part" if index == 0 else f"s{index:04d}"


def next_shard(lineage: dict[str, Any] | None) -> int:
    """Shards are numbered on across parts: the next part's first shard index."""
    numbers = [
        int(m.group(1))
        for part in (lineage or {}).get("parts", [])
        for shard in part["shards"]
        if (m := re.search(r"shard-(\d+)\.parquet$", shard["path"]))
    ]
    return max(numbers) + 1 if numbers else 0


def remove_unfinished(root: str, lineage: dict[str, Any] | None) -> list[str]:
    """Delete files that no finished part owns (a killed part's leftovers); returns what was removed."""
    parts = [part["part"] for part in (lineage or {}).get("parts", [])]
    shards = {shard["path"] for part in (lineage or {}).get("parts", []) for shard in part["shards"]}
    removed = []
    for sub in PART_DIRS:
        folder = os.path.join(root, sub)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            path = os.path.join(folder, name)
            if os.path.isdir(path) and name.startswith("beam-temp"):
                shutil.rmtree(path)  # a killed sink's temporary files
                removed.append(f"{sub}/{name}")
            elif os.path.isfile(path) and not any(name.startswith(f"{part}-") for part in parts):
                os.remove(path)
                removed.append(f"{sub}/{name}")
    shard_dir = os.path.join(root, "shards")
    for name in sorted(os.listdir(shard_dir)) if os.path.isdir(shard_dir) else []:
        if f"shards/{name}" not in shards:
            os.remove(os.path.join(shard_dir, name))
            removed.append(f"shards/{name}")
    return removed


# -------------------------------------------------------------------------------------------- stats


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Stats of several parts as one run's: every count summed per stage; one part: its stats as is."""
    if len(parts) == 1:
        return parts[0]
    stages: dict[str, dict[str, Any]] = {}
    for stats in parts:
        for name, entry in stats.get("stages", {}).items():
            merged = stages.setdefault(name, {"in": 0, "out": 0, "rejected": {}})
            for key, value in entry.items():
                if key == "rejected":
                    for reason, n in value.items():
                        merged["rejected"][reason] = merged["rejected"].get(reason, 0) + n
                elif isinstance(value, int) and not isinstance(value, bool):
                    merged[key] = merged.get(key, 0) + value
    for entry in stages.values():
        entry["rejected"] = dict(sorted(entry["rejected"].items()))
        entry["balanced"] = entry["in"] == entry["out"] + sum(entry["rejected"].values())
    totals = {
        key: sum(s.get(key, 0) for s in parts)
        for key in ("documents_read", "documents_kept", "documents_rejected")
    }
    merged_stats: dict[str, Any] = {"stages": stages, **totals}
    merged_stats["balanced"] = all(e["balanced"] for e in stages.values()) and totals["documents_read"] == (
        totals["documents_kept"] + totals["documents_rejected"]
    )
    merged_stats["seconds"] = round(sum(s.get("seconds", 0) for s in parts), 2)
    merged_stats["parts"] = len(parts)
    for key in ("tokenize", "mixing"):  # per-part reports: the last part's, each part's in lineage.json
        if key in parts[-1]:
            merged_stats[key] = parts[-1][key]
    return merged_stats


# ------------------------------------------------------------------------------------------ planning


@dataclass
class Plan:
    """What one invocation will do: the new inputs in segments, and what the folder already holds."""

    root: str  # the folder the parts are written to (the output's staging folder)
    inputs: list[dict[str, Any]]  # every input's identity ({path, size, checksum}), each hashed once
    key: str
    lineage: dict[str, Any] | None
    segments: list[list[dict[str, Any]]]
    skipped: int  # inputs already in the appended version

    def finished(self, segment: list[dict[str, Any]]) -> bool:
        done = done_inputs(self.lineage, plan=self.key)
        return bool(segment) and all(input_key(entry) in done for entry in segment)


def plan_run(config: Config, files: list[str], root: str, append: str | None, base: str | None) -> Plan:
    """Identify the inputs, prepare ``root`` (fresh, resumed, or a checkout of the appended version at
    ``base``) and cut what is left to do into segments."""
    inputs = [identify(path) for path in files]
    if not is_local(root):
        if append or segment_limits(config) != (None, None):
            raise CurateError(f"{root}: segments and --append need a local output folder")
        clear_outputs(root)
        return Plan(root, inputs, "", None, [inputs], 0)
    os.makedirs(root, exist_ok=True)
    key = plan_key(config, inputs, append)
    lineage = read_lineage(root)
    plan = (lineage or {}).get("plan") or {}
    if base is not None:
        clear_outputs(root)
        copy_tree(base, root)
        lineage = lineage_of_version(root)
    elif plan.get("key") == key and not plan.get("complete"):  # the same command, killed before: resume
        remove_unfinished(root, lineage)
        shutil.rmtree(Layout(root).work, ignore_errors=True)
    else:
        clear_outputs(root)
        lineage = None
    before = {  # files (whole, or cut in ranges: a finished version has read all of them) read before
        file_key(entry)
        for part in (lineage or {}).get("parts", [])
        if part.get("plan") != key
        for entry in part["inputs"]
    }
    todo = [entry for entry in inputs if file_key(entry) not in before]
    segments = plan_segments(todo, *segment_limits(config), split=file_record_ranges)
    return Plan(root, inputs, key, lineage, segments, len(inputs) - len(todo))


def part_config(config: Config, root: str, label: str) -> Config:
    """A later part's recipe: deduplicated against the folder so far (``root``, named ``label`` in
    `dup_version`), with the tokenizer the first part trained."""
    data = config.model_dump(mode="json")
    stages = data["stages"]
    if os.path.isfile(os.path.join(root, INDEX_DIR, INDEX_META)):
        for stage in DOCUMENT_STAGES:
            against = stages[stage.name].get("against") if stage.role is Role.DEDUP else None
            if stages[stage.name]["enabled"] and against is not None and label not in against:
                against.append(label)
    tokenize = stages[token_shards.STAGE.name]
    if tokenize["enabled"] and tokenize["train"] is not None:
        # A trained tokenizer is trained once, by the first part; the later parts reuse it.
        keep = os.path.join(tempfile.mkdtemp(prefix="curate-tokenizer-"), "tokenizer.json")
        shutil.copyfile(os.path.join(root, "tokenizer.json"), keep)
        tokenize.update(tokenizer=keep, train=None)
    return Config.model_validate(data)


def file_record_ranges(path: str, size: int, max_bytes: int) -> list[tuple[int, int]] | None:
    """A big WARC.gz input cut at records, so that one file cannot outgrow a segment's memory bound."""
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        return record_ranges(raw, path, size, max_bytes)


def clear_outputs(root: str) -> None:
    """A run replaces its output folder's results; stale shards must never mix with new ones."""
    layout = Layout(root)
    for pattern in ("documents/*", "rejected/*", "shards/*", ".work/*", "index/*/*", "index/*"):
        matches = FileSystems.match([layout.path(pattern)])[0].metadata_list
        files = [m.path for m in matches if not (is_local(m.path) and os.path.isdir(m.path))]
        if files:
            FileSystems.delete(files)
    for name in ("stats.json", "manifest.json", "tokenizer.json", LINEAGE, "report.html"):
        if FileSystems.exists(layout.path(name)):
            FileSystems.delete([layout.path(name)])


def copy_tree(source: str, dest: str) -> None:
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

"""Reading the progress files workers write (pipelines/progress.py): the one reader, for the console
(curate.console_progress) and the service's progress bars (curate.service.progress).

The driver writes the stage order beside the workers' files (``_plan.json``); a worker's file is
``{"read", "kept", "bytes", "stages": {stage: {"out", "rejected"}}}``, summed here over processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLAN_FILE = "_plan.json"


@dataclass
class Counters:
    """Counts so far, summed over every process's file."""

    read: int = 0  # records the readers met
    kept: int = 0  # documents past the last stage
    bytes: int = 0  # bytes of input files read to their end
    stages: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> {"out", "rejected"}
    order: list[str] = field(default_factory=list)  # stage order: the plan's, then any others seen


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_plan(directory: str, stages: list[str], files: int) -> None:
    """The stage order, for whoever displays the counters."""
    (Path(directory) / PLAN_FILE).write_text(json.dumps({"stages": stages, "files": files}))


def read_counters(directory: str | Path) -> Counters:
    """Sum every process's file in ``directory``; a file being replaced right now is skipped (the next
    poll sees it)."""
    folder = Path(directory)
    counters = Counters()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name == PLAN_FILE:
            continue
        counts = _read_json(path)
        if not isinstance(counts, dict):
            continue
        counters.read += counts.get("read", 0)
        counters.kept += counts.get("kept", 0)
        counters.bytes += counts.get("bytes", 0)
        for stage, entry in counts.get("stages", {}).items():
            total = counters.stages.setdefault(stage, {"out": 0, "rejected": 0})
            total["out"] += entry.get("out", 0)
            total["rejected"] += entry.get("rejected", 0)
    plan = _read_json(folder / PLAN_FILE) or {}
    order = list(plan.get("stages", [])) or list(counters.stages)
    counters.order = order + [stage for stage in counters.stages if stage not in order]
    return counters

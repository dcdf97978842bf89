"""Where training runs started from the command line are listed, so the service's training page shows
them; and the progress file of an ablation, which the service reads.

`curate train` appends one line per run (its output folder and request) to `~/.curate/train-runs.jsonl`
(or `$CURATE_TRAIN_RUNS`); the service reads the list and charts each run's `train.jsonl` beside its own
jobs. Appends of one short line are atomic on POSIX, so concurrent runs never interleave.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def registry_path() -> Path:
    default = Path.home() / ".curate" / "train-runs.jsonl"
    return Path(os.environ.get("CURATE_TRAIN_RUNS", default)).expanduser()


def register(output: Path, request: dict[str, Any]) -> None:
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"output": str(output.resolve()), "request": request, "started": time.time()})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def registered() -> list[dict[str, Any]]:
    """Every registered run, the latest registration of an output folder winning, oldest first."""
    try:
        lines = registry_path().read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    runs: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
            runs[str(entry["output"])] = entry
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
    return list(runs.values())


ABLATION_PROGRESS = "progress.json"  # in a `curate ablate --output` folder: runs done of all, and which runs


def write_progress(folder: Path, **state: Any) -> None:
    temporary = folder / f".{ABLATION_PROGRESS}.tmp"
    temporary.write_text(json.dumps({**state, "updated": time.time()}))
    temporary.replace(folder / ABLATION_PROGRESS)


def read_progress(folder: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((folder / ABLATION_PROGRESS).read_text()))
    except (OSError, ValueError):
        return None

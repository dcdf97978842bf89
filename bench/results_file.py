"""One shape for the JSON a bench script writes to bench/results/: what ran, when, on what machine."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def write_results(out: str | Path, benchmark: str, note: str, rows: list[dict[str, Any]]) -> None:
    """Write ``{benchmark, when, machine, note, rows}`` to ``out`` and say where."""
    result = {
        "benchmark": benchmark,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "note": note,
        "rows": rows,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")

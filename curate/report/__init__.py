"""Run reports: `OUT/report.html`, written at the end of `curate run` and rebuilt by `curate report OUT`.

`collect` reads a run's outputs into small aggregates (Parquet columns via pyarrow), `charts` turns them
into plotly figures and `page` renders one self-contained, offline HTML file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from curate.core.files import write_atomic
from curate.report.collect import collect
from curate.report.page import render

REPORT_FILE = "report.html"


def build_report(root: str, config: Any = None, output: str | None = None) -> str:
    """The report's HTML for the run in ``root``; ``config`` (a Config or dict) defaults to the manifest's;
    ``output``: the folder the report names (a run builds it in its staging folder, before publishing)."""
    if config is not None and hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    data = collect(root, config)
    return render(dataclasses.replace(data, root=output) if output else data)


def write_report(root: str, config: Any = None, output: str | None = None) -> str:
    """Build and atomically write ``root``/report.html; returns its path."""
    path = "/".join([root.rstrip("/"), REPORT_FILE])
    write_atomic(path, build_report(root, config, output).encode("utf-8"))
    return path

#!/usr/bin/env python3
"""Run report benchmark: time to build OUT/report.html per 10,000 documents.

    python bench/report.py [--sizes 10000 50000] [--out bench/results/report.json]

It runs the default recipe once on every real sample in ../shared/data (WARC, WET, JSONL: kept and
rejected documents from most stages), then scales that output up by repeating its rows (documents/ and
rejected/ Parquet, 10,000 rows a file, stats scaled to match) and times `curate.report.build_report`
on each size in a fresh process: the Parquet column passes (histograms, languages, text sizes, samples)
and the page rendering, the peak memory of that process, and the size of the HTML.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED = REPO.parent / "shared" / "data"
WORK = REPO / "build" / "bench-report"
ROWS_PER_FILE = 10_000


def base_run() -> Path:
    """One real run over the shared samples (cached under build/)."""
    out = WORK / "base"
    if (out / "stats.json").is_file():
        return out
    recipe = WORK / "recipe.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text("runner: {name: direct, workers: 2}\nstages: {langid: {languages: all}}\n")
    inputs = sorted(str(p) for p in SHARED.glob("*/*") if p.name.endswith((".warc.gz", ".jsonl.gz")))
    command = [sys.executable, "-m", "curate", "run", str(recipe), "--output", str(out), "--quiet"]
    for path in inputs:
        command += ["--input", path]
    subprocess.run(command, check=True)
    return out


def _scaled_table(folder: Path, factor: float) -> pa.Table:
    table = pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))])
    repeats = max(1, math.ceil(factor))
    return pa.concat_tables([table] * repeats).slice(0, round(table.num_rows * factor))


def scaled_run(base: Path, documents: int) -> Path:
    """The base run's outputs repeated to ``documents`` documents read (kept + rejected)."""
    out = WORK / f"scaled-{documents}"
    stats = json.loads((base / "stats.json").read_text())
    factor = documents / stats["documents_read"]
    for sub in ("documents", "rejected"):
        table = _scaled_table(base / sub, factor)
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).glob("*.parquet"):
            old.unlink()
        for index, start in enumerate(range(0, table.num_rows, ROWS_PER_FILE)):
            pq.write_table(table.slice(start, ROWS_PER_FILE), out / sub / f"part-{index:05d}.parquet")

    def scale(node):
        if isinstance(node, dict):
            return {k: scale(v) if k not in ("seconds", "cpu_seconds") else v for k, v in node.items()}
        return round(node * factor) if isinstance(node, int) and not isinstance(node, bool) else node

    (out / "stats.json").write_text(json.dumps(scale(stats)))
    (out / "manifest.json").write_text((base / "manifest.json").read_text())
    return out


def time_report(folder: Path) -> dict[str, float]:
    """Build the report in a fresh process; returns its timings, peak memory and HTML size."""
    code = (
        "import json, resource, sys, time\n"
        "t0 = time.perf_counter()\n"
        "from curate.report.collect import collect\n"
        "from curate.report.page import render\n"
        "t1 = time.perf_counter(); data = collect(sys.argv[1]); t2 = time.perf_counter()\n"
        "page = render(data); t3 = time.perf_counter()\n"
        "print(json.dumps({'import_s': t1 - t0, 'collect_s': t2 - t1, 'render_s': t3 - t2,"
        " 'html_bytes': len(page.encode()),"
        " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(folder)], check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "report.json")
    args = parser.parse_args()
    base = base_run()
    base_stats = json.loads((base / "stats.json").read_text())
    rows = []
    for documents in args.sizes:
        folder = scaled_run(base, documents)
        started = time.perf_counter()
        timing = time_report(folder)
        timing["wall_s"] = time.perf_counter() - started
        build = timing["collect_s"] + timing["render_s"]
        rows.append({"documents": documents, **timing, "report_s_per_10k_docs": build / documents * 10_000})
    print(f"base run: {base_stats['documents_read']} real documents, {base_stats['documents_kept']} kept; "
          f"report built on it repeated to each size")  # fmt: skip
    print(
        f"{'documents':>10} {'collect s':>10} {'render s':>9} {'s / 10k docs':>13} {'peak MB':>8}"
        f" {'HTML MB':>8}"
    )
    for row in rows:
        print(
            f"{row['documents']:>10,} {row['collect_s']:>10.2f} {row['render_s']:>9.2f} "
            f"{row['report_s_per_10k_docs']:>13.2f} {row['peak_rss_mb']:>8.0f}"
            f" {row['html_bytes'] / 1e6:>8.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"base_documents": base_stats["documents_read"], "rows": rows}, indent=2) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

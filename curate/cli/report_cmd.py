"""`curate report OUT`: (re)build OUT/report.html from a finished run's outputs (local or object store)."""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="Build OUT/report.html: charts of what each stage did.")
    report.add_argument("output", metavar="OUT", help="A `curate run` output folder (or gs://, s3:// URL).")
    report.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from curate.report import write_report

    started = time.monotonic()
    path = write_report(args.output)
    print(f"curate: wrote {path} in {time.monotonic() - started:.1f}s")
    return 0

"""curate: raw web crawl in, curated and versioned token shards out (Apache Beam); then train on them."""

from __future__ import annotations

import argparse
import logging
import sys

from curate import __version__
from curate.cli import (
    classifier_cmd,
    config_cmd,
    decont_cmd,
    dedup_cmd,
    demo_cmd,
    engines_cmd,
    lm_cmd,
    report_cmd,
    run_cmd,
    serve_cmd,
    shards_cmd,
    train_cmd,
    versions_cmd,
)
from curate.core.errors import CurateError

# One module per command group (each adds its subparsers and sets `func` on them); the order is --help's.
COMMAND_MODULES = [
    run_cmd,
    config_cmd,
    demo_cmd,
    dedup_cmd,
    shards_cmd,
    lm_cmd,
    versions_cmd,
    train_cmd,
    classifier_cmd,
    decont_cmd,
    report_cmd,
    serve_cmd,
    engines_cmd,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"curate {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command_module in COMMAND_MODULES:
        command_module.register(subparsers)
    return parser


class _QuietBeamImports(logging.Filter):
    """Beam warns at import about optional GCP client libraries that curate does not use."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().addFilter(_QuietBeamImports())
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CurateError as error:
        print(f"curate: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, permissions, a vanished file: the system said what
        where = f"{error.filename}: " if error.filename else ""
        print(f"curate: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("curate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

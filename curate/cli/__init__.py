"""`curate` command line. Each subcommand lives in its own module with a `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from curate import __version__
from curate.core.errors import CurateError

# One module per command group; each adds its subparsers and sets `func` on them.
COMMAND_MODULES = [
    "curate.cli.lm_cmd",
    "curate.cli.run_cmd",
    "curate.cli.config_cmd",
    "curate.cli.demo_cmd",
    "curate.cli.versions_cmd",
    "curate.cli.dedup_cmd",
    "curate.cli.train_cmd",
    "curate.cli.shards_cmd",
    "curate.cli.report_cmd",
    "curate.cli.serve_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="curate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"curate {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
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
    except KeyboardInterrupt:
        print("curate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

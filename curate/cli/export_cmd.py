"""`curate export OUT|NAME@REF --format F --output DEST` and `curate export --verify DEST`."""

from __future__ import annotations

import argparse
import json
import sys

from curate.core.errors import CurateError
from curate.object_store import add_storage_arguments, configure_reading

FORMATS = ["megatron", "mds", "litdata", "hf", "datatrove"]  # curate.export.FORMATS


def register(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "export",
        help="Token shards for Megatron, MosaicML MDS, LitData, HF datasets, datatrove (docs/export.md).",
        description="Streams the shards into the consumer's layout with the tokenizer and a token-stream "
        "hash; --verify DEST reads an export back with the consumer's own reader and checks that hash.",
    )
    add = command.add_argument
    add(
        "source", nargs="?", metavar="OUT|NAME@REF", help="A run's output folder (or gs://, s3://), NAME@REF."
    )
    add("--format", choices=FORMATS, help="The consumer's layout.")
    add("--output", metavar="DEST", help="A new folder, or a gs:// / s3:// prefix.")
    add("--by-domain", action="store_true", help="One dataset per domain plus blend weights.")
    add(
        "--verify",
        metavar="DEST",
        help="Re-read DEST (a folder, gs:// or s3://) with its consumer's reader; exit 1 on a mismatch.",
    )
    add("--quiet", action="store_true", help="No progress on stderr.")
    add_storage_arguments(command)
    command.set_defaults(func=_export)


def _progress(documents: int, tokens: int, total: int) -> None:
    share = f" ({tokens / total:.0%})" if total else ""
    print(f"\rexport: {documents:,} documents, {tokens:,} tokens{share}", end="", file=sys.stderr, flush=True)


def _export(args: argparse.Namespace) -> int:
    from curate import export

    if args.verify:
        configure_reading(args, args.verify)
        result = export.verify(args.verify)
        print(json.dumps(result))
        return 0 if result["ok"] else 1
    if not (args.source and args.format and args.output):
        raise CurateError("curate export: give OUT|NAME@REF, --format and --output (or --verify DEST)")
    configure_reading(args, args.source, args.output)
    metadata = export.export(
        args.source,
        args.format,
        args.output,
        by_domain=args.by_domain,
        progress=None if args.quiet else _progress,
    )
    if not args.quiet:
        print(file=sys.stderr)
    summary = {k: metadata[k] for k in ("format", "documents", "tokens", "token_stream_hash", "seconds")}
    print(json.dumps({**summary, "output": args.output, "train_with": metadata["train_with"]}))
    return 0

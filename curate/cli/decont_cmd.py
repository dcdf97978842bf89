"""`curate decont index EVAL... --output IDX`: the n-gram index of evaluation sets, built once, for the
decontaminate stage (`stages.decontaminate.index`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "decont",
        help="Remove benchmark text from training data: build the n-gram index of evaluation sets.",
        description="Decontamination keeps evaluation-benchmark text out of the training data. `curate "
        "decont index` builds the n-gram index of evaluation sets once; a recipe's "
        "`stages.decontaminate.index` then rejects (or strips the lines of) every document that shares "
        "n-grams with them.",
    )
    commands = group.add_subparsers(dest="decont_command", required=True, metavar="COMMAND")
    index = commands.add_parser("index", help="Build the n-gram index of evaluation sets.")
    index.add_argument(
        "eval_sets",
        nargs="+",
        metavar="[NAME=]PATH",
        help="An evaluation file or glob (JSONL, Parquet, text); its name defaults to the file's stem.",
    )
    index.add_argument("--output", required=True, metavar="INDEX.npz")
    index.add_argument(
        "--fields", default="text", help="Comma-separated record fields, e.g. question,choices,answer."
    )
    index.add_argument("--ngram", type=int, default=13, help="Words per n-gram (default 13).")
    index.set_defaults(func=_index)


def parse_eval_set(argument: str, fields: list[str]):
    from curate.filters.decontaminate import EvalSetConfig

    name, _, path = argument.rpartition("=")
    if not name:
        name = Path(path).name.split(".")[0]
    return EvalSetConfig(name=name, paths=[path], fields=fields)


def _index(args: argparse.Namespace) -> int:
    from curate.filters.decontaminate import build_index

    fields = [f.strip() for f in args.fields.split(",") if f.strip()]
    specs = [parse_eval_set(argument, fields) for argument in args.eval_sets]
    index = build_index(specs, args.ngram)
    index.save(args.output)
    for name in index.names:
        short = index.short_items[name]
        print(f"{name}: {index.items[name]:,} items indexed, {short:,} shorter than {args.ngram} words")
    print(f"{len(index.hashes):,} distinct {args.ngram}-grams -> {args.output}")
    return 0

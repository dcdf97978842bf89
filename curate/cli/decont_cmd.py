"""`curate decont index EVAL... --output IDX`: the n-gram index of evaluation sets, built once, for the
decontaminate stage (`stages.decontaminate.index`)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from curate.core.errors import CurateError


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
        nargs="*",
        metavar="[NAME=]PATH",
        help="An evaluation file or glob (JSONL, Parquet, text); its name defaults to the file's stem.",
    )
    index.add_argument("--output", required=True, metavar="INDEX.npz")
    index.add_argument(
        "--fields", default="text", help="Comma-separated record fields, e.g. question,choices,answer."
    )
    index.add_argument("--ngram", type=int, default=13, help="Words per n-gram (default 13).")
    index.add_argument(
        "--bundled",
        nargs="+",
        default=[],
        metavar="TASK",
        help="Also index the benchmarks `curate eval` scores (context + gold answer of every item), by "
        "name or 'all': what an ablation is scored on is what its data should be cleaned of.",
    )
    index.set_defaults(func=_index)


def parse_eval_set(argument: str, fields: list[str]):
    from curate.filters.decontaminate import EvalSetConfig

    name, _, path = argument.rpartition("=")
    if not name:
        name = Path(path).name.split(".")[0]
    return EvalSetConfig(name=name, paths=[path], fields=fields)


def bundled_eval_sets(names: list[str], scratch: Path) -> list:
    """Each bundled task's items as a JSONL file of {"text"} (context + gold continuation) to index."""
    from curate.filters.decontaminate import EvalSetConfig
    from curate.train.tasks import check_tasks, decontamination_texts

    specs = []
    for task in check_tasks(names) if names else []:
        path = scratch / f"{task}.jsonl"
        with open(path, "w", encoding="utf-8") as out:
            for text in decontamination_texts([task]):
                out.write(json.dumps({"text": text}) + "\n")
        specs.append(EvalSetConfig(name=task, paths=[str(path)], fields=["text"]))
    return specs


def _index(args: argparse.Namespace) -> int:
    from curate.filters.decontaminate import build_index

    fields = [f.strip() for f in args.fields.split(",") if f.strip()]
    specs = [parse_eval_set(argument, fields) for argument in args.eval_sets]
    if not specs and not args.bundled:
        raise CurateError("name evaluation files, or --bundled TASK... (or all) for the bundled benchmarks")
    with tempfile.TemporaryDirectory(prefix="curate-decont-") as scratch:
        specs += bundled_eval_sets(args.bundled, Path(scratch))
        index = build_index(specs, args.ngram)
    index.save(args.output)
    for name in index.names:
        short = index.short_items[name]
        print(f"{name}: {index.items[name]:,} items indexed, {short:,} shorter than {args.ngram} words")
    print(f"{len(index.hashes):,} distinct {args.ngram}-grams -> {args.output}")
    return 0

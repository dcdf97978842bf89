"""`curate dedup --input PATH... --output DIR`: only the dedup stages, on documents you already have.

Reads Parquet or JSONL (or crawl files: text is extracted first), runs exact and MinHash dedup with the
recipe's settings, and writes the same layout and stats.json as `curate run` (kept documents,
rejected ones with their reason and cluster), through the same runner.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from curate.cli.run_cmd import add_runner_arguments, override
from curate.core.config import Role

if TYPE_CHECKING:
    from curate.config import Config

# What this command runs of a recipe, by the stages' declared roles: text extraction where the input is
# crawl files, then the dedup stages; every other stage is off, whatever the recipe says.
KEEP = (Role.PREPARE, Role.DEDUP)


def register(subparsers: argparse._SubParsersAction) -> None:
    dedup = subparsers.add_parser(
        "dedup", help="Remove exact and near-duplicate documents (Parquet/JSONL in, kept + rejected out)."
    )
    dedup.add_argument("--input", action="append", required=True, metavar="PATH_OR_GLOB")
    dedup.add_argument("--output", required=True, metavar="DIR")
    dedup.add_argument("--config", help="Take dedup, input and runner settings from this recipe.")
    dedup.add_argument("--format", choices=["auto", "warc", "wet", "jsonl", "parquet"], help="Input format.")
    dedup.add_argument("--threshold", type=float, help="Jaccard similarity that makes a near-duplicate.")
    dedup.add_argument("--num-perm", type=int, help="MinHash permutations.")
    dedup.add_argument("--bands", type=int, help="LSH bands (with --rows; default: from threshold).")
    dedup.add_argument("--rows", type=int, help="LSH rows per band.")
    dedup.add_argument("--no-exact", action="store_true", help="Skip exact dedup.")
    dedup.add_argument("--no-minhash", action="store_true", help="Skip near-duplicate dedup.")
    dedup.add_argument("--tokenize", action="store_true", help="Also tokenize into shards.")
    add_runner_arguments(dedup)
    dedup.set_defaults(func=_dedup)


def dedup_config(args: argparse.Namespace) -> Config:
    """The recipe for a dedup-only run: the given recipe (or defaults) with every other stage off."""
    from curate.config import Config, load_config, parse_config
    from curate.pipelines import dedup_exact, dedup_minhash, token_shards
    from curate.pipelines.stage_order import ALL_STAGES

    data = override((load_config(args.config) if args.config else Config()).model_dump(), args)
    if args.format:
        data["input"]["format"] = args.format
    for stage in ALL_STAGES:
        if stage.role not in KEEP:
            data["stages"][stage.name]["enabled"] = False
    data["stages"][token_shards.STAGE.name]["enabled"] = bool(args.tokenize)
    data["stages"][dedup_exact.STAGE.name]["enabled"] = not args.no_exact
    minhash = data["stages"][dedup_minhash.STAGE.name]
    minhash["enabled"] = not args.no_minhash
    for key in ("threshold", "num_perm", "bands", "rows"):
        if getattr(args, key) is not None:
            minhash[key] = getattr(args, key)
    return parse_config(data, args.config or "curate dedup")


def _dedup(args: argparse.Namespace) -> int:
    from curate.run import run

    run(dedup_config(args), progress=not args.quiet)
    return 0

"""`curate run CONFIG.yaml [--input ...] [--output DIR] [--runner NAME] [--workers N]`."""

from __future__ import annotations

import argparse

from curate.config import ConfigError, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="Run a curation recipe (crawl in, token shards out).")
    run.add_argument("config", help="Recipe YAML (see `curate config show`).")
    run.add_argument("--input", action="append", metavar="PATH_OR_GLOB", help="Replaces input.paths.")
    run.add_argument("--output", metavar="DIR", help="Replaces output.path.")
    run.add_argument("--runner", help="direct | portable | dataflow | flink | spark | prism")
    run.add_argument("--workers", type=int, help="Worker processes for the direct runner.")
    run.add_argument("--job-endpoint", metavar="HOST:PORT", help="Beam job service (portable runner).")
    run.add_argument("--quiet", action="store_true", help="No progress or summary on the console.")
    run.set_defaults(func=_run)


def apply_overrides(config, args: argparse.Namespace):
    """Command-line flags win over the recipe; the result is validated like the file itself."""
    data = config.model_dump()
    if args.input:
        data["input"]["paths"] = args.input
    if args.output:
        data["output"]["path"] = args.output
    if args.runner:
        data["runner"]["name"] = args.runner
    if args.workers is not None:
        data["runner"]["workers"] = args.workers
    if getattr(args, "job_endpoint", None):
        data["runner"]["job_endpoint"] = args.job_endpoint
    from curate.config import parse_config

    return parse_config(data, f"{args.config} (with command-line overrides)")


def _run(args: argparse.Namespace) -> int:
    from curate.run import run

    config = apply_overrides(load_config(args.config), args)
    if not config.input.paths:
        raise ConfigError(f"{args.config}: input.paths: no input given (set it or pass --input)")
    run(config, progress=not args.quiet)
    return 0

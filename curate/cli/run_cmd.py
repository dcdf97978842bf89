"""`curate run CONFIG.yaml [--input ...] [--output DIR] [--append NAME@BRANCH] [--runner NAME] [-w N]`."""

from __future__ import annotations

import argparse

from curate.object_store import add_storage_arguments, storage_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="Run a curation recipe (crawl in, token shards out).")
    run.add_argument("config", nargs="?", help="Recipe YAML (see `curate config show`).")
    run.add_argument(
        "--recipe-from",
        metavar="VERSION",
        help="Rerun the exact recipe recorded in a version's lineage (NAME@REF or lakefs://REPO/REF).",
    )
    run.add_argument("--input", action="append", metavar="PATH_OR_GLOB", help="Replaces input.paths.")
    run.add_argument("--output", metavar="DIR", help="Replaces output.path.")
    run.add_argument(
        "--append",
        metavar="NAME@BRANCH",
        help="Add to that version: skip its inputs, dedup against it, commit the result on the branch.",
    )
    run.add_argument(
        "--strict", action="store_true", help="Fail at the first unreadable record (input.strict)."
    )
    add_runner_arguments(run)
    run.set_defaults(func=_run)


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """The runner and console flags every pipeline command shares (`run`, `dedup`)."""
    parser.add_argument("--runner", help="direct | portable | dataflow | flink | spark | prism")
    parser.add_argument("--workers", type=int, help="Worker processes for the direct runner.")
    parser.add_argument("--job-endpoint", metavar="HOST:PORT", help="Beam job service (portable runner).")
    parser.add_argument("--quiet", action="store_true", help="No progress or summary on the console.")
    parser.add_argument(
        "--beam-option",
        action="append",
        metavar="KEY=VALUE",
        help="A Beam pipeline option for the runner (e.g. max_num_workers=100); adds to runner.options.",
    )
    add_storage_arguments(parser)


def override(data: dict, args: argparse.Namespace) -> dict:
    """Command-line flags win over the recipe (as a dict, validated afterwards like the file itself)."""
    from curate.config import ConfigError

    if args.input:
        data["input"]["paths"] = args.input
    if args.output is not None:  # an empty --output is an error (preflight), never the recipe's default
        data["output"]["path"] = args.output
    if getattr(args, "strict", False):
        data["input"]["strict"] = True
    if args.runner:
        data["runner"]["name"] = args.runner
    if args.workers is not None:
        data["runner"]["workers"] = args.workers
    if args.job_endpoint:
        data["runner"]["job_endpoint"] = args.job_endpoint
    for option in getattr(args, "beam_option", None) or []:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ConfigError(f"--beam-option {option}: expected KEY=VALUE")
        data["runner"]["options"][key.removeprefix("--")] = value
    from curate.pipelines.runner import StorageConfig

    data["storage"] = storage_from_args(args, StorageConfig(**data.get("storage", {}))).model_dump()
    return data


def apply_overrides(config, args: argparse.Namespace):
    from curate.config import parse_config

    return parse_config(override(config.model_dump(), args), f"{args.config} (with command-line overrides)")


def _run(args: argparse.Namespace) -> int:
    from curate.config import ConfigError, load_config
    from curate.run import run

    if bool(args.config) == bool(args.recipe_from):
        raise ConfigError("curate run: give a recipe file or --recipe-from VERSION (exactly one)")
    if args.recipe_from:
        from curate.config import parse_config
        from curate.versions.lineage import recipe_of

        recipe, source = recipe_of(args.recipe_from)
        args.config = f"the recipe of {source}"
        config = parse_config(override(recipe, args), args.config)
    else:
        config = apply_overrides(load_config(args.config), args)
    run(config, progress=not args.quiet, append=args.append)
    return 0

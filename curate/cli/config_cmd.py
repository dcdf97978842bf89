"""`curate config show|validate`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="Show or validate a recipe.")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="Print the default recipe (FineWeb-like) as YAML.")
    show.set_defaults(func=_show)
    validate = actions.add_parser(
        "validate", help="Check a recipe and the files it names, as `curate run` does before it starts."
    )
    validate.add_argument("file")
    validate.add_argument(
        "--no-files",
        action="store_true",
        help="Check the recipe only, not its inputs, models, lists, output.",
    )
    validate.set_defaults(func=_validate)


def _show(args: argparse.Namespace) -> int:
    from curate.config import config_to_yaml, default_config

    print(config_to_yaml(default_config()), end="")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from curate.config import load_config
    from curate.preflight import preflight

    config = load_config(args.file)
    preflight(config, check_files=not args.no_files)  # the checks `curate run` makes, no fewer
    enabled = [name for name, stage in config.stages if stage.enabled]  # type: ignore[attr-defined]
    checked = "" if args.no_files else ", files checked"
    print(f"{args.file}: ok ({len(enabled)} stages enabled: {', '.join(enabled)}{checked})")
    return 0

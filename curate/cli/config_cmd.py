"""`curate config show|validate`."""

from __future__ import annotations

import argparse

from curate.config import config_to_yaml, default_config, load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    config = subparsers.add_parser("config", help="Show or validate a recipe.")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="Print the default recipe (FineWeb-like) as YAML.")
    show.set_defaults(func=_show)
    validate = actions.add_parser("validate", help="Check a recipe; one-line error naming the key.")
    validate.add_argument("file")
    validate.set_defaults(func=_validate)


def _show(args: argparse.Namespace) -> int:
    print(config_to_yaml(default_config()), end="")
    return 0


def _validate(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    enabled = [name for name, stage in config.stages if stage.enabled]  # type: ignore[attr-defined]
    print(f"{args.file}: ok ({len(enabled)} stages enabled: {', '.join(enabled)})")
    return 0

"""`curate classifier train`: a fastText quality classifier with DCLM's settings, for the classifier stage."""

from __future__ import annotations

import argparse

from curate.classifier_train import DCLM_SETTINGS


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("classifier", help="Train model-based quality classifiers.")
    commands = group.add_subparsers(dest="classifier_command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="Train a fastText classifier (positives: __label__hq); held-out precision, recall, AUC.",
    )
    train.add_argument("--positive", nargs="+", required=True, metavar="FILE", help="High-quality documents.")
    train.add_argument("--negative", nargs="+", required=True, metavar="FILE", help="Other documents.")
    train.add_argument("--output", required=True, metavar="MODEL.bin")
    train.add_argument("--text-field", default="text", help="Field of JSONL/Parquet records (default: text).")
    train.add_argument("--valid-fraction", type=float, default=0.1, help="Held-out share (default 0.1).")
    train.add_argument("--seed", type=int, default=42, help="Shuffle and fastText seed (DCLM: 42).")
    train.add_argument(
        "--threads", type=int, default=1, help="fastText threads (1: the same model every time)."
    )
    for key, value in DCLM_SETTINGS.items():
        scaled = " (default: scaled to the training set's size)" if key in ("epoch", "lr") else ""
        train.add_argument(f"--{key}", type=type(value), help=f"fastText {key} (DCLM: {value}){scaled}.")
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from curate.classifier_train import metrics_path, train

    settings = {key: getattr(args, key) for key in DCLM_SETTINGS}
    report = train(
        args.positive,
        args.negative,
        args.output,
        text_field=args.text_field,
        valid_fraction=args.valid_fraction,
        seed=args.seed,
        threads=args.threads,
        settings=settings,
    )
    for line in report.lines():
        print(line)
    print(f"metrics: {metrics_path(args.output)}")
    return 0

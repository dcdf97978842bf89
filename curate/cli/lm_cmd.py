"""`curate lm build-tools` and `curate lm train`: KenLM models for the perplexity stage."""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    lm = subparsers.add_parser("lm", help="KenLM language models for the perplexity stage.")
    actions = lm.add_subparsers(dest="action", required=True, metavar="ACTION")

    tools = actions.add_parser(
        "build-tools",
        help="Build KenLM's lmplz and build_binary from the kenlm sdist into the cache "
        "($CURATE_HOME/kenlm/bin or ~/.cache/curate/kenlm/bin).",
    )
    tools.add_argument("--sdist", help="A downloaded kenlm-*.tar.gz (default: pip download it).")
    tools.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="Parallel compile jobs.")
    tools.add_argument("--force", action="store_true", help="Rebuild even if the tools are cached.")
    tools.set_defaults(func=_build_tools)

    train = actions.add_parser(
        "train", help="Train a KenLM n-gram model on text (normalised as the perplexity stage does)."
    )
    train.add_argument(
        "--corpus", nargs="+", required=True, metavar="TEXT",
        help="Plain text or JSONL files (.gz/.zst ok); JSONL contributes its --text-field.",
    )  # fmt: skip
    train.add_argument("--output", required=True, help="model.binary (KenLM binary) or model.arpa.")
    train.add_argument("--order", type=int, default=5, help="n-gram order (CCNet: 5).")
    train.add_argument("--memory", default="1G", help="lmplz -S: sort memory, e.g. 1G or 50%%.")
    train.add_argument("--text-field", default="text", help="JSONL field holding the text.")
    train.add_argument("--sentencepiece", help="SentencePiece model to tokenise lines with (CCNet).")
    train.set_defaults(func=_train)


def _say(message: str) -> None:
    print(f"curate lm: {message}", file=sys.stderr)


def _build_tools(args: argparse.Namespace) -> int:
    from curate.lm import build_tools

    for tool, path in build_tools(args.sdist, jobs=args.jobs, force=args.force, say=_say).items():
        print(f"{tool}\t{path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from curate.core.errors import CurateError
    from curate.lm import train

    if not 1 <= args.order <= 6:
        raise CurateError(f"--order {args.order}: KenLM is built for orders 1 to 6")
    result = train(
        args.corpus, args.output, order=args.order, memory=args.memory, text_field=args.text_field,
        sentencepiece=args.sentencepiece, say=_say,
    )  # fmt: skip
    print(
        f"{result.output}: {args.order}-gram on {result.lines:,} lines, {result.tokens:,} tokens "
        f"in {result.seconds:.1f}s"
    )
    return 0

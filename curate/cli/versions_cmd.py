"""`curate versions ...`: dataset versions on branches (the embedded store; see curate/store.py)."""

from __future__ import annotations

import argparse
import json
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    versions = subparsers.add_parser(
        "versions", help="Commit, branch, list, diff and check out dataset versions."
    )
    actions = versions.add_subparsers(dest="action", required=True, metavar="ACTION")
    commit = actions.add_parser("commit", help="Commit a run's output folder to a dataset branch.")
    commit.add_argument("folder")
    commit.add_argument("dataset", help="name[@branch]")
    commit.add_argument("-m", "--message", default="")
    commit.set_defaults(func=_commit)
    log = actions.add_parser("log", help="History of name[@ref].")
    log.add_argument("spec")
    log.set_defaults(func=_log)
    branch = actions.add_parser("branch", help="Create a branch: NAME NEW [--from REF].")
    branch.add_argument("dataset")
    branch.add_argument("new")
    branch.add_argument("--from", dest="from_ref", default="main")
    branch.set_defaults(func=_branch)
    tag = actions.add_parser("tag", help="Tag a version: NAME TAG [--ref REF].")
    tag.add_argument("dataset")
    tag.add_argument("tag")
    tag.add_argument("--ref", default="main")
    tag.set_defaults(func=_tag)
    listing = actions.add_parser("list", help="Datasets with their branches and tags.")
    listing.set_defaults(func=_list)
    diff = actions.add_parser("diff", help="Files and counts that differ between name@a and b.")
    diff.add_argument("spec_a")
    diff.add_argument("ref_b")
    diff.set_defaults(func=_diff)
    checkout = actions.add_parser("checkout", help="Materialise name@ref as a folder.")
    checkout.add_argument("spec")
    checkout.add_argument("dest")
    checkout.set_defaults(func=_checkout)


def _store():
    from curate.store import LocalStore

    return LocalStore()


def _commit(args: argparse.Namespace) -> int:
    from curate.store import parse_spec

    dataset, branch = parse_spec(args.dataset)
    commit = _store().commit_dir(args.folder, dataset, branch, args.message)
    print(f"{dataset}@{commit.id} on branch {branch} ({len(commit.files)} files)")
    return 0


def _log(args: argparse.Namespace) -> int:
    from curate.store import parse_spec

    dataset, ref = parse_spec(args.spec)
    for commit in _store().log(dataset, ref):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(commit.created))
        kept = commit.stats.get("documents_kept", "?")
        print(f"{commit.id}  {when}  kept {kept}  {commit.message}")
    return 0


def _branch(args: argparse.Namespace) -> int:
    commit = _store().branch(args.dataset, args.new, args.from_ref)
    print(f"{args.dataset}@{args.new} -> {commit.id}")
    return 0


def _tag(args: argparse.Namespace) -> int:
    commit = _store().tag(args.dataset, args.tag, args.ref)
    print(f"{args.dataset}@{args.tag} -> {commit.id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store()
    for dataset in store.datasets():
        branches = ", ".join(f"{b}={c[:10]}" for b, c in store.branches(dataset).items())
        tags = ", ".join(store.tags(dataset)) or "-"
        print(f"{dataset}: branches {branches}; tags {tags}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from curate.store import parse_spec

    dataset, ref_a = parse_spec(args.spec_a)
    print(json.dumps(_store().diff(dataset, ref_a, args.ref_b), indent=2))
    return 0


def _checkout(args: argparse.Namespace) -> int:
    from curate.store import parse_spec

    dataset, ref = parse_spec(args.spec)
    print(_store().checkout(dataset, ref, args.dest))
    return 0

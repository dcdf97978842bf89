"""`curate versions ...`: dataset versions on branches, in the embedded store or a lakeFS repository.

A version is named ``NAME@REF`` (embedded dataset), ``lakefs://REPO/REF`` (lakeFS), or a bare ``REF`` of
the repository given by ``--repo NAME|lakefs://REPO`` or ``$CURATE_REPO``. See curate/versions/.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from curate.core.errors import CurateError
from curate.object_store import add_storage_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    versions = subparsers.add_parser(
        "versions", help="Commit, branch, tag, log, show, diff, merge and check out dataset versions."
    )
    versions.add_argument(  # also accepted after the action (each action's --repo wins)
        "--repo", dest="repo_top", metavar="NAME|lakefs://REPO", help="Repository for bare refs."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--repo", metavar="NAME|lakefs://REPO", help="Repository for bare refs (default: $CURATE_REPO)."
    )
    actions = versions.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text, parents=[common])
        parser.set_defaults(func=func)
        return parser

    commit = action("commit", "Commit a run's output folder to a branch.", _commit)
    commit.add_argument("folder")
    commit.add_argument("spec", nargs="?", default="", help="NAME[@BRANCH], lakefs://REPO/BRANCH or BRANCH.")
    commit.add_argument("-m", "--message", default="")
    add_storage_arguments(commit)
    log = action("log", "History of a ref (first parents), with each commit's lineage summary.", _log)
    log.add_argument("spec")
    log.add_argument("-n", "--limit", type=int, default=50)
    show = action("show", "One version's lineage: recipe, code, inputs, runner, stats.", _show)
    show.add_argument("spec")
    show.add_argument("--json", action="store_true", help="Print the version as JSON.")
    branch = action("branch", "Create a branch: SPEC NEW (from SPEC's ref, or --from REF).", _branch)
    branch.add_argument("spec", help="NAME, NAME@REF, lakefs://REPO[/REF] or REF.")
    branch.add_argument("new")
    branch.add_argument("--from", dest="from_ref", help="Ref to branch from (default: SPEC's ref).")
    tag = action("tag", "Tag a version: SPEC TAG (SPEC's ref, or --ref REF).", _tag)
    tag.add_argument("spec")
    tag.add_argument("tag")
    tag.add_argument("--ref", help="Ref to tag (default: SPEC's ref).")
    action("list", "Datasets (embedded) or the repository's branches and tags.", _list)
    diff = action(
        "diff", "Compare SPEC_A with REF_B: documents, tokens, shards, stages, recipe keys, files.", _diff
    )
    diff.add_argument("spec_a")
    diff.add_argument("ref_b", help="A ref of the same repository (or NAME@REF / lakefs://REPO/REF).")
    diff.add_argument("--json", action="store_true", help="Print the comparison as JSON (for scripts).")
    checkout = action(
        "checkout",
        "Materialise a version in an empty folder, outside the store (copies, checked by sha256).",
        _checkout,
    )
    checkout.add_argument("spec")
    checkout.add_argument("dest")
    checkout.add_argument(
        "--force",
        action="store_true",
        help="Replace a previous checkout in DEST (deletes only the files it wrote).",
    )
    merge = action("merge", "Merge SRC (a ref) into branch DST of the same repository.", _merge)
    merge.add_argument("source")
    merge.add_argument("destination")
    merge.add_argument("-m", "--message", default="")
    merge.add_argument("--strategy", choices=["source-wins", "dest-wins"], help="Resolve conflicts this way.")
    gc = action("gc", "Embedded store: remove objects no commit references (dry run unless --apply).", _gc)
    gc.add_argument("--apply", action="store_true", help="Delete them (default: only report).")


def _repo(args: argparse.Namespace) -> str | None:
    return getattr(args, "repo", None) or getattr(args, "repo_top", None)


def _locate(spec: str, repo: str | None):
    from curate.versions import default_repository, locate, open_repository

    if not spec:
        chosen = default_repository(repo)
        if not chosen:
            raise CurateError("no version given: pass NAME@REF, lakefs://REPO/REF, or --repo / $CURATE_REPO")
        store = open_repository(chosen)
        return store, store.default_branch()
    return locate(spec, repo)


def _when(version: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(version.created))


def _commit(args: argparse.Namespace) -> int:
    from curate.object_store import configure, storage_from_args
    from curate.versions.lineage import of_output_folder

    configure(storage_from_args(args))  # a folder on s3:// or gs:// is read through Beam's filesystems
    store, branch = _locate(args.spec, _repo(args))
    folder = args.folder.rstrip("/") or args.folder
    lineage = of_output_folder(folder)
    version = store.commit_output(folder, branch, args.message or f"commit {folder}", lineage)
    print(f"{store.name}@{version.id} on branch {branch}")
    return 0


def _log(args: argparse.Namespace) -> int:
    store, ref = _locate(args.spec, _repo(args))
    for version in store.log(ref, args.limit):
        lineage = version.lineage
        kept = version.stats.get("documents_kept", "-")
        runner = (lineage.get("runner") or {}).get("name", "-")
        inputs = len(lineage.get("inputs") or [])
        code = (lineage.get("code") or {}).get("curate", "-")
        print(
            f"{version.id[:12]}  {_when(version)}  kept {kept}  runner {runner}  inputs {inputs}"
            f"  curate {code}  {version.message}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    import yaml

    store, ref = _locate(args.spec, _repo(args))
    version = store.resolve(ref)
    if args.json:
        record = {"id": version.id, "parents": list(version.parents), "message": version.message}
        print(json.dumps({**record, "created": version.created, "lineage": version.lineage}, indent=2))
        return 0
    lineage = version.lineage
    print(f"commit   {version.id}  ({store.name}@{ref})")
    print(f"parents  {' '.join(version.parents) or '-'}")
    print(f"date     {_when(version)}")
    print(f"message  {version.message}")
    if not lineage:
        print("lineage  none recorded (committed before lineage existed, or not by curate)")
        return 0
    code = lineage.get("code") or {}
    print(f"curate   {code.get('curate', '-')} (git {code.get('git_commit') or 'unknown'})")
    runner = lineage.get("runner") or {}
    if runner:
        print(f"runner   {runner.get('name')} (workers {runner.get('workers')})")
    inputs = lineage.get("inputs") or []
    if inputs:
        total = sum(i.get("size") or 0 for i in inputs)
        print(f"inputs   {len(inputs)} file(s), {total:,} bytes")
        for entry in inputs:
            check = entry.get("sha256") and f"sha256:{entry['sha256']}" or f"checksum:{entry.get('checksum')}"
            print(f"  {entry['path']}  {entry.get('size', '?'):,}  {check}")
    stats = lineage.get("stats") or {}
    if stats:
        print(
            f"stats    read {stats.get('documents_read', '-')}, kept {stats.get('documents_kept', '-')},"
            f" rejected {stats.get('documents_rejected', '-')}, tokens {stats.get('total_tokens', '-')}"
        )
        for name, stage in (stats.get("stages") or {}).items():
            reasons = ", ".join(f"{r} {n}" for r, n in stage.get("rejected", {}).items()) or "-"
            print(f"  {name:<14}{stage['in']:>9}{stage['out']:>9}  {reasons}")
    if lineage.get("redacted"):
        print(f"redacted {', '.join(lineage['redacted'])}")
    if lineage.get("recipe"):
        print("recipe")
        text = yaml.safe_dump(lineage["recipe"], sort_keys=False)
        print("\n".join("  " + line for line in text.splitlines()))
    return 0


def _branch(args: argparse.Namespace) -> int:
    store, ref = _locate(args.spec, _repo(args))
    version = store.branch(args.new, args.from_ref or ref)
    print(f"{store.name}@{args.new} -> {version.id}")
    return 0


def _tag(args: argparse.Namespace) -> int:
    store, ref = _locate(args.spec, _repo(args))
    version = store.tag(args.tag, args.ref or ref)
    print(f"{store.name}@{args.tag} -> {version.id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from curate.versions import LocalStore, default_repository, open_repository

    chosen = default_repository(_repo(args))
    stores = [open_repository(chosen)] if chosen else [open_repository(d) for d in LocalStore().datasets()]
    for store in stores:
        branches = ", ".join(f"{b}={c[:10]}" for b, c in store.branches().items()) or "-"
        tags = ", ".join(store.tags()) or "-"
        print(f"{store.name}: branches {branches}; tags {tags}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from curate.versions.compare import compare, format_table

    store, ref_a = _locate(args.spec_a, _repo(args))
    ref_b = args.ref_b
    if "@" in ref_b or ref_b.startswith("lakefs://"):
        other, ref_b = _locate(ref_b, _repo(args))
        if other.name != store.name:
            raise CurateError(f"cannot compare across repositories ({store.name} with {other.name})")
    comparison = compare(store, ref_a, ref_b)
    print(json.dumps(comparison, indent=2) if args.json else format_table(comparison))
    return 0


def _checkout(args: argparse.Namespace) -> int:
    store, ref = _locate(args.spec, _repo(args))
    print(store.checkout(ref, args.dest, force=args.force))
    return 0


def _merge(args: argparse.Namespace) -> int:
    store, source = _locate(args.source, _repo(args))
    destination = args.destination
    if "@" in destination or destination.startswith("lakefs://"):
        other, destination = _locate(destination, _repo(args))
        if other.name != store.name:
            raise CurateError(f"cannot merge across repositories ({store.name} into {other.name})")
    version = store.merge(source, destination, args.message, strategy=args.strategy)
    print(f"{store.name}@{destination} -> {version.id}")
    return 0


def _lakefs_gc_rules(uri: str, apply: bool) -> int:
    """lakeFS collects its own garbage by the repository's GC rules: show them (curate deletes nothing)."""
    from curate.versions.lakefs import LakeFSRepository, parse_uri

    if apply:
        raise CurateError(
            f"{uri}: lakeFS removes garbage itself (its GC job, by its GC rules); nothing to apply"
        )
    rules = LakeFSRepository(parse_uri(uri)[0]).gc_rules()
    if rules is None:
        print(f"{uri}: no GC rules; lakeFS keeps every version (set them: lakectl gc set-config)")
        return 0
    branches = ", ".join(f"{name} {days} days" for name, days in sorted(rules["branches"].items()))
    print(f"{uri}: lakeFS GC keeps commits {rules['default']} days" + (f"; {branches}" if branches else ""))
    return 0


def _gc(args: argparse.Namespace) -> int:
    from curate.versions import LocalStore, default_repository

    chosen = default_repository(_repo(args))
    if chosen and chosen.startswith("lakefs://"):
        return _lakefs_gc_rules(chosen, args.apply)
    store = LocalStore()
    report = store.gc(apply=args.apply)
    verb = "removed" if args.apply else "would remove (dry run; pass --apply)"
    print(f"{store.root}: {verb} {report['objects']} object(s), {report['bytes']:,} bytes")
    return 0

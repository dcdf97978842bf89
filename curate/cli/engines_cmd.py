"""`curate engines fetch` (what `make engines` runs) and `curate engines status`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    engines = subparsers.add_parser("engines", help="Fetch and inspect the Flink and Spark runners' jars.")
    commands = engines.add_subparsers(dest="engines_command", required=True, metavar="COMMAND")
    fetch = commands.add_parser("fetch", help="Fetch Beam's job servers and the engines' jars with Maven.")
    fetch.add_argument("engine", nargs="*", help="flink and/or spark (default: both).")
    fetch.set_defaults(func=_fetch)
    status = commands.add_parser("status", help="Where each engine's jars are, and whether they are fetched.")
    status.set_defaults(func=_status)
    cluster = commands.add_parser(
        "cluster", help="Start a local Flink session or Spark standalone cluster (until Ctrl-C)."
    )
    cluster.add_argument("engine", choices=["flink", "spark"])
    cluster.add_argument("--workers", type=int, default=2, help="TaskManagers / workers (default 2).")
    cluster.add_argument(
        "--dir", default="engine-cluster", help="Logs and configuration (default ./engine-cluster)."
    )
    cluster.set_defaults(func=_cluster)


def _fetch(args: argparse.Namespace) -> int:
    from curate.core.errors import CurateError
    from curate.engines.distributions import DISTRIBUTIONS, fetch, version_note

    unknown = sorted(set(args.engine) - set(DISTRIBUTIONS))
    if unknown:
        raise CurateError(f"curate engines fetch: unknown engine {unknown[0]} (flink or spark)")
    for name in args.engine or list(DISTRIBUTIONS):
        print(f"{name}: {fetch(DISTRIBUTIONS[name])}")
    print(version_note())
    return 0


def _status(args: argparse.Namespace) -> int:
    from curate.core.errors import CurateError
    from curate.engines.distributions import DISTRIBUTIONS, version_note

    print(version_note())
    missing = 0
    for name, distribution in DISTRIBUTIONS.items():
        try:
            distribution.classpath()
            print(f"{name}: {', '.join(distribution.artifacts)} in {distribution.lib}")
        except CurateError as error:
            print(f"{name}: {error}")
            missing += 1
    return 1 if missing else 0


def _cluster(args: argparse.Namespace) -> int:
    import threading
    from pathlib import Path

    from curate.engines.clusters import FlinkSession, SparkStandalone

    start = FlinkSession if args.engine == "flink" else SparkStandalone
    with start(Path(args.dir), args.workers) as cluster:
        option = "flink_master" if args.engine == "flink" else "spark_master_url"
        print(f"{args.engine}: {cluster.master} (REST/UI {cluster.rest}; logs in {args.dir})")
        print(
            f"  curate run RECIPE --runner {args.engine} --beam-option {option}={cluster.master}", flush=True
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print(f"{args.engine}: stopping")
    return 0

"""`curate serve`: the web service that runs and tracks curation and training jobs (curate/service/)."""

from __future__ import annotations

import argparse
import os

from curate.core.errors import CurateError

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="Web service and pages: start runs and training, watch progress, read reports."
    )
    serve.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--root",
        action="append",
        metavar="DIR",
        help="A folder that request paths may name (repeatable; default: the working directory).",
    )
    serve.add_argument("--token", help="Bearer token every API call must carry (default: $CURATE_TOKEN).")
    serve.add_argument("--max-jobs", type=int, default=1, help="Jobs that run at once (default 1).")
    serve.add_argument(
        "--state", metavar="DIR", help="Job records and job folders (default: FIRST_ROOT/.curate-service)."
    )
    serve.add_argument(
        "--engine",
        action="append",
        metavar="RUNNER.yaml",
        help="Let requests run on this engine: a YAML file with a `runner:` section (e.g. flink with its "
        "flink_master); a request that names that runner gets exactly this section (repeatable).",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("CURATE_TOKEN") or None
    if args.host not in LOOPBACK and not token:
        raise CurateError(
            f"refusing to listen on {args.host} without a token: anyone who can reach it could run jobs; "
            "pass --token T or set CURATE_TOKEN (or keep the default --host 127.0.0.1)"
        )
    if args.max_jobs < 1:
        raise CurateError(f"--max-jobs {args.max_jobs}: must be at least 1")
    try:
        import uvicorn

        from curate.service.app import create_app
        from curate.service.settings import ServiceSettings
    except ImportError as error:
        raise CurateError(
            f"curate serve needs the serve extra ({error.name} missing): pip install -e '.[serve]'"
        ) from None

    engines = _engines(args.engine or [])
    settings = ServiceSettings.create(args.root or [os.getcwd()], token, args.max_jobs, args.state, engines)
    app = create_app(settings)
    print(
        f"curate: serving on http://{args.host}:{args.port}/ (roots: {', '.join(map(str, settings.roots))})"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _engines(files: list[str]) -> dict[str, dict]:
    """runner name -> runner section, from the operator's `--engine` files (checked like a recipe's)."""
    import yaml

    from curate.pipelines.runner import RunnerConfig

    engines: dict[str, dict] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as handle:
                section = (yaml.safe_load(handle) or {}).get("runner")
            runner = RunnerConfig.model_validate(section)
        except (OSError, ValueError, AttributeError) as error:
            raise CurateError(
                f"--engine {path}: expected a YAML file with a runner: section ({error})"
            ) from None
        if runner.name == "direct":
            raise CurateError(f"--engine {path}: the direct runner is always offered; name an engine")
        engines[runner.name] = runner.model_dump(mode="json")
    return engines

"""Paths the workers will open must be reachable from the workers, checked before a job is submitted.

On Dataflow, Flink or Spark (and the portable runner with EXTERNAL or DOCKER workers) a worker shares
no disk with the machine that submits the job: a model, list or input named by a local path would fail
on the first worker after the job has queued and started, or, worse, be found at the same path by
accident on some workers only. Such a recipe fails here, in one line, unless it declares that local
paths are a mount every worker has (``runner.shared_paths: true``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from curate.core.config import path_values
from curate.core.errors import CurateError
from curate.core.files import CONFINE_ENV, check_confined, is_local, list_files
from curate.pipelines.recipe import Config


def absolute_local_paths(config: Config) -> Config:
    """The recipe with local input and output paths made absolute: workers do not run in the driver's
    working directory (a relative output would be written relative to each worker's own)."""
    config = config.model_copy(deep=True)
    config.input.paths = [os.path.abspath(p) if p and is_local(p) else p for p in config.input.paths]
    if config.output.path and is_local(config.output.path):
        config.output.path = os.path.abspath(config.output.path)
    return config


def _strings(value: Any, key: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, f"{key}.{name}")
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, key)


def local_paths_for_workers(config: Config) -> list[tuple[str, str]]:
    """(recipe key, path) of every local path the workers would have to open: inputs, the output, and
    any file an enabled stage names that exists on this machine (models, lists, a tokenizer)."""
    found = [("input.paths", p) for p in config.input.paths if is_local(p)]
    if is_local(config.output.path):
        found.append(("output.path", config.output.path))
    stages = config.stages.model_dump(mode="json")
    for name, settings in stages.items():
        if not settings.get("enabled", True):
            continue
        for key, value in _strings(settings, f"stages.{name}"):
            if is_local(value) and (os.path.isfile(value) or ("/" in value and os.path.exists(value))):
                found.append((key, value))
    return found


def check_workers_can_reach(config: Config) -> None:
    """Raise, before submission, when workers elsewhere would be handed a path on this machine."""
    runner = config.runner
    if not runner.workers_are_elsewhere or runner.shared_paths:
        return
    found = local_paths_for_workers(config)
    if found:
        key, path = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise CurateError(
            f"{key}: {path} is a local path, but the {runner.name} runner's workers do not share this "
            f"machine's disk{more}; put it on gs:// or s3:// (or set runner.shared_paths: true if every "
            "worker mounts it at the same place)"
        )


def check_confined_paths(config: Config) -> None:
    """In a job of `curate serve`: every path the recipe names (globs as the files they match now) must
    still lead inside the service's roots when the job starts (see curate.core.files.check_confined)."""
    if not os.environ.get(CONFINE_ENV):
        return
    for found in path_values(config):
        if not found.marker.is_path(found.value):
            continue
        if found.marker.kind == "glob" and is_local(found.value):
            for path in list_files(found.value):
                check_confined(path)
        else:
            check_confined(found.value)

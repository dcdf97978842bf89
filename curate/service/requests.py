"""Request bodies of the API, and turning a submitted recipe into a checked, confined one.

Problems the user can fix are `RequestProblem`s naming the field (the app answers 422 with it in
``detail[].loc``, as FastAPI does for its own validation); paths outside the roots are `PathOutsideRoots`
(403). Only then does anything run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.config import Config, ConfigError, error_message, parse_yaml
from curate.core.config import SHAPE_ONLY, path_values
from curate.service.paths import confine, confine_pattern

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # dataset, branch and tag names (as the store)
JOB_ID = r"^[0-9a-f]{16}$"
# curate.train.tasks.ALL_TASKS (the service does not import the trainer)
EVAL_TASK = Literal[
    "all",
    "arc_easy",
    "arc_challenge",
    "hellaswag",
    "piqa",
    "winogrande",
    "openbookqa",
    "sciq",
    "csqa",
    "socialiqa",
    "boolq",
    "lambada",
    "reference",
]
PRESETS = Literal["tiny", "cpu-proxy", "small", "gpt2-small", "gpt2-medium", "gpt2-large"]


class RequestProblem(Exception):
    def __init__(self, loc: list[str | int], message: str):
        super().__init__(message)
        self.loc = ["body", *loc]
        self.message = message

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": self.loc, "msg": self.message, "type": "value_error"}]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipe: str | dict[str, Any] = Field(description="The recipe, as YAML text or as an object.")
    input: list[str] | None = Field(None, description="Replaces the recipe's input paths (globs allowed).")
    output: str | None = Field(None, description="Replaces the recipe's output folder.")


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str = Field(description="A run id, a dataset as name@ref, or a `curate run` output folder.")
    preset: PRESETS = "tiny"
    steps: int = Field(200, ge=1, le=1_000_000)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_every: int = Field(50, ge=0, le=1_000_000)
    eval_fraction: float = Field(
        0.01, ge=0.0, le=0.5, description="Documents held out for eval (by id hash)."
    )
    log_every: int = Field(5, ge=1, le=100_000)
    eval_tasks: list[EVAL_TASK] = Field(
        default_factory=list,
        description="Bundled tasks scored every eval_every steps; 'reference' is the clean text shared by "
        "every dataset, so runs on different data compare.",
    )
    eval_limit: int = Field(200, ge=1, le=100_000, description="Items per eval task.")


def _every_task() -> list[EVAL_TASK]:
    return ["all"]


class AblationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    versions: list[str] = Field(min_length=2, max_length=8, description="Dataset versions as name@ref.")
    preset: Literal["cpu", "gpu-150m", "gpu-400m", "gpu-1b"] = "cpu"
    seeds: int = Field(3, ge=1, le=20)
    tokens: int | None = Field(None, ge=1, description="Training tokens per run (default: the preset's).")
    tasks: list[EVAL_TASK] = Field(default_factory=lambda: _every_task())
    limit: int | None = Field(None, ge=1, le=100_000, description="Items per task (default: the preset's).")
    device: Literal["auto", "cpu", "cuda"] = "auto"


def _recipe_data(recipe: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(recipe, dict):
        data: Any = recipe
    else:
        try:
            data = parse_yaml(recipe, "recipe")  # the command line's loader, with its bounds
        except ConfigError as error:
            raise RequestProblem(["recipe"], str(error)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RequestProblem(["recipe"], f"expected a mapping at the top level, got {type(data).__name__}")
    return data


def _validated(data: dict[str, Any], context: dict[str, Any] | None = None) -> Config:
    try:
        return Config.model_validate(data, context=context)
    except ValidationError as error:
        first = error.errors()[0]
        loc = ["recipe", *first["loc"]]
        more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
        message = error_message(first)
        raise RequestProblem(loc, f"{'.'.join(map(str, loc))}: {message}{more}") from None
    except RecursionError:  # a JSON body nested deeper than any recipe (YAML text is bounded by its loader)
        raise RequestProblem(["recipe"], "nested too deeply to be a recipe") from None


def _request_loc(loc: tuple[str | int, ...], overridden: dict[tuple[str, ...], str]) -> list[str | int]:
    """Where a recipe value sits in the request: under ``input``/``output`` when the request replaced
    them, else under ``recipe``."""
    for prefix, name in overridden.items():
        if loc[: len(prefix)] == prefix:
            return [name, *loc[len(prefix) :]]
    return ["recipe", *loc]


def _dotted(loc: list[str | int]) -> str:
    """``recipe.stages.langid.model``, ``input[0]``: a location as a person reads it."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _set(data: Any, loc: tuple[str | int, ...], value: Any) -> None:
    for part in loc[:-1]:
        data = data[part]
    data[loc[-1]] = value


def confined_paths(
    config: BaseModel, roots: tuple[Path, ...], overridden: dict[tuple[str, ...], str] | None = None
) -> tuple[dict[str, Any], int]:
    """``config`` dumped, with every path-bearing value (found from the fields' NamesPath markers, see
    curate.core.config.path_values) confined to the roots and frozen: files and folders as their real
    paths, globs expanded now into the real paths of the files they match. Raises PathOutsideRoots or
    RequestProblem; nothing is opened. Also returns the bytes of the input files (for progress)."""
    overridden = overridden or {}
    dumped = config.model_dump(mode="json")
    expanded: dict[tuple[str | int, ...], list[str]] = {}  # a glob list field -> its files, in order
    total_bytes = 0
    for found in path_values(config):
        if not found.marker.is_path(found.value):
            continue  # a bundled name ('gpt2') or a dataset version (NAME@REF), looked up in the store
        loc = _request_loc(found.loc, overridden)
        field = _dotted(loc)
        if found.marker.kind != "glob":
            _set(dumped, found.loc, str(confine(found.value, roots, field)))
            continue
        _, files = confine_pattern(found.value, roots, field)
        if not files:
            raise RequestProblem(loc, f"{field}: '{found.value}' matches no file")
        expanded.setdefault(found.loc[:-1], []).extend(str(file) for file in files)
        if found.loc[:2] == ("input", "paths"):
            total_bytes += sum(file.stat().st_size for file in files)
    for where, paths in expanded.items():
        _set(dumped, where, list(dict.fromkeys(paths)))
    return dumped, total_bytes


def checked_config(
    request: RunRequest, roots: tuple[Path, ...], default_output: Path, engines: dict[str, dict] | None = None
) -> tuple[Config, int]:
    """The recipe to run, every path in it real, inside the roots and frozen; and the input's size in bytes.

    Order matters: the recipe's shape is validated without opening any file it names, then every
    path-bearing value is confined, and only then is it validated in full (which may read a model).
    A recipe may name an engine the operator configured (``engines``): it then runs with the operator's
    runner section, never with a master, worker environment or Beam option the request names."""
    data = _recipe_data(request.recipe)
    engines = engines or {}
    runner = data.get("runner")
    requested = runner.get("name", "direct") if isinstance(runner, dict) else None
    on_engine = isinstance(requested, str) and requested in engines
    if on_engine:
        data["runner"] = dict(engines[str(requested)])
    config = _validated(data, SHAPE_ONLY)
    if config.runner.name != "direct" and not on_engine:
        offered = ", ".join(["direct", *sorted(engines)])
        raise RequestProblem(
            ["recipe", "runner", "name"], f"the service runs recipes on these runners only: {offered}"
        )
    # free-form Beam flags can name paths (temp_location) the markers cannot see; the operator's may
    if config.runner.options and not on_engine:
        raise RequestProblem(
            ["recipe", "runner", "options"], "the service passes no Beam options to its runs; remove them"
        )
    if config.output.dataset is not None and not NAME.match(config.output.dataset):
        raise RequestProblem(["recipe", "output", "dataset"], "use letters, digits, '.', '_' and '-'")
    if not NAME.match(config.output.branch):
        raise RequestProblem(["recipe", "output", "branch"], "use letters, digits, '.', '_' and '-'")
    overridden: dict[tuple[str, ...], str] = {}
    if request.input is not None:
        config.input.paths = request.input
        overridden[("input", "paths")] = "input"
    if not config.input.paths:
        raise RequestProblem(
            ["input"], "no input given: set input in the request or input.paths in the recipe"
        )
    if request.output is not None:
        config.output.path = request.output
        overridden[("output", "path")] = "output"
    dumped, total_bytes = confined_paths(config, roots, overridden)
    if request.output is None and not (
        isinstance(data.get("output"), str) or "path" in (data.get("output") or {})
    ):
        dumped["output"]["path"] = str(default_output)  # the job's own folder, which the service chose
    return _validated(dumped), total_bytes

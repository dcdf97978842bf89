"""Request bodies of the API, and turning a submitted recipe into a checked, confined one.

Problems the user can fix are `RequestProblem`s naming the field (the app answers 422 with it in
``detail[].loc``, as FastAPI does for its own validation); paths outside the roots are `PathOutsideRoots`
(403). Only then does anything run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.config import Config
from curate.service.paths import confine, confine_pattern

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # dataset, branch and tag names (as the store)
JOB_ID = r"^[0-9a-f]{16}$"
PRESETS = Literal["tiny", "small", "gpt2-small", "gpt2-medium", "gpt2-large"]
# Recipe keys that name files the run will open, besides input and output (stage models and lists).
FILE_KEYS = {
    "model",
    "blocklists",
    "banned_words",
    "wordlists",
    "fasttext_model",
    "sentencepiece",
    "tokenizer",
}


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


def _recipe_data(recipe: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(recipe, dict):
        return recipe
    try:
        data = yaml.safe_load(recipe)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RequestProblem(["recipe"], f"invalid YAML{where}: {getattr(error, 'problem', error)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RequestProblem(["recipe"], f"expected a mapping at the top level, got {type(data).__name__}")
    return data


def _confine_files(node: Any, loc: list[str | int], roots: tuple[Path, ...]) -> Any:
    """Recipe values under FILE_KEYS made absolute and confined; other values returned as they are."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in FILE_KEYS and value is not None:
                out[key] = _confine_value(value, [*loc, key], roots)
            else:
                out[key] = _confine_files(value, [*loc, key], roots)
        return out
    if isinstance(node, list):
        return [_confine_files(item, [*loc, i], roots) for i, item in enumerate(node)]
    return node


def _confine_value(value: Any, loc: list[str | int], roots: tuple[Path, ...]) -> Any:
    field = ".".join(str(part) for part in loc)
    if isinstance(value, str):
        if loc[-1] == "tokenizer" and value == "gpt2":
            return value  # the bundled tokenizer, not a path
        return str(confine(value, roots, field))
    if isinstance(value, list):
        return [_confine_value(item, [*loc, i], roots) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _confine_value(item, [*loc, key], roots) for key, item in value.items()}
    return value


def checked_config(
    request: RunRequest, roots: tuple[Path, ...], default_output: Path, engines: dict[str, dict] | None = None
) -> tuple[Config, int]:
    """The recipe to run (paths absolute and inside the roots) and the input's size in bytes. A recipe may
    name an engine the operator configured (``engines``): it runs with the operator's runner section,
    never with a master or worker environment the request names."""
    data = _recipe_data(request.recipe)
    engines = engines or {}
    requested = (
        (data.get("runner") or {}).get("name", "direct") if isinstance(data.get("runner"), dict) else None
    )
    if requested in engines:
        data["runner"] = dict(engines[requested])
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        loc = ["recipe", *first["loc"]]
        more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise RequestProblem(loc, f"{'.'.join(map(str, loc))}: {first['msg']}{more}") from None
    if config.runner.name != "direct" and config.runner.name not in engines:
        offered = ", ".join(["direct", *sorted(engines)])
        raise RequestProblem(
            ["recipe", "runner", "name"], f"the service runs recipes on these runners only: {offered}"
        )
    if config.output.dataset is not None and not NAME.match(config.output.dataset):
        raise RequestProblem(["recipe", "output", "dataset"], "use letters, digits, '.', '_' and '-'")
    if not NAME.match(config.output.branch):
        raise RequestProblem(["recipe", "output", "branch"], "use letters, digits, '.', '_' and '-'")
    patterns = request.input if request.input is not None else config.input.paths
    where = "input" if request.input is not None else "recipe.input.paths"
    if not patterns:
        raise RequestProblem(
            ["input"], "no input given: set input in the request or input.paths in the recipe"
        )
    paths, total_bytes = [], 0
    for index, pattern in enumerate(patterns):
        absolute, files = confine_pattern(pattern, roots, f"{where}[{index}]")
        if not files:
            raise RequestProblem([*where.split("."), index], f"'{pattern}' matches no file")
        paths.append(absolute)
        total_bytes += sum(f.stat().st_size for f in files)
    if request.output is not None:
        output = confine(request.output, roots, "output")
    elif isinstance(data.get("output"), str) or "path" in (data.get("output") or {}):
        output = confine(config.output.path, roots, "recipe.output.path")
    else:
        output = default_output
    dumped = config.model_dump(mode="json")
    dumped["stages"] = _confine_files(dumped["stages"], ["recipe", "stages"], roots)
    dumped["input"]["paths"] = paths
    dumped["output"]["path"] = str(output)
    return Config.model_validate(dumped), total_bytes

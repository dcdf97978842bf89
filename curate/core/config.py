"""What every recipe section is built from: strict pydantic models and the stage declaration.

Unknown keys are errors (a typo in a threshold must not be silently ignored), and assignments are
validated, so a config changed in code is as checked as one read from YAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo


class Strict(BaseModel):
    # NaN and infinity pass every range check (nan >= 0 is False, yet pydantic's bounds let it through
    # without allow_inf_nan) and crash a run late: no recipe number may be either.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# Threshold types: a value out of range would reject everything (or nothing) without a word.
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]  # a share of lines, characters or words
NonNegative = Annotated[float, Field(ge=0.0)]  # a ratio that may exceed 1, a length
Count = Annotated[int, Field(ge=0)]
# Documents handled per call: more holds that many documents (HTML included) in one worker's memory.
MAX_BATCH = 65_536


@dataclass(frozen=True)
class NamesPath:
    """Marks a config field whose value names what a run opens or writes: a file, a folder, a glob, or
    a dataset version (NAME@REF). Put it in the field's type, ``Annotated[str | None, NamesPath("file")]``;
    every string in the value counts (list items, dict values), so ``{lang: path}`` fields are covered.

    The service confines every such value to its roots (`path_values` finds them), so a new field that
    names a file is confined by declaring it so, not by editing a list elsewhere.
    """

    kind: Literal["file", "folder", "glob", "file_or_folder"]
    writes: bool = False  # the run writes there (the output), rather than reading
    versions: bool = False  # NAME@REF names a version in the store instead of a path
    builtins: tuple[str, ...] = ()  # values that name something bundled, not a path (e.g. "gpt2")

    def is_path(self, value: str) -> bool:
        """Whether ``value`` names a path: not a bundled name, nor NAME@REF where versions are allowed."""
        if value in self.builtins:
            return False
        return not (self.versions and is_version_ref(value))


VERSION_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}@[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def is_version_ref(value: str) -> bool:
    """NAME@REF: a dataset and a branch, tag or commit (the store's naming rule on both sides)."""
    return VERSION_REF.match(value) is not None


@dataclass(frozen=True)
class PathValue:
    """One string a validated config names as a path: where it is (``("stages", "langid", "model")``,
    list indices and dict keys included), the value, and its field's marker."""

    loc: tuple[str | int, ...]
    value: str
    marker: NamesPath


def _strings(value: Any, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))


def path_values(config: BaseModel, loc: tuple[str | int, ...] = ()) -> Iterator[PathValue]:
    """Every path-bearing string of a validated config, found from the fields' `NamesPath` markers.

    Sub-models are walked wherever they sit (a field, a list item, a dict value); ``loc`` matches the
    layout of ``config.model_dump()``, so a caller can rewrite a value in the dumped form."""
    for name, field in type(config).model_fields.items():
        value = getattr(config, name)
        marker = next((m for m in field.metadata if isinstance(m, NamesPath)), None)
        if marker is not None:
            for where, text in _strings(value, (*loc, name)):
                yield PathValue(where, text, marker)
            continue
        if isinstance(value, BaseModel):
            yield from path_values(value, (*loc, name))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from path_values(item, (*loc, name, index))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    yield from path_values(item, (*loc, name, key))


# Validation context for checking a recipe's shape without opening any file it names: the service
# validates so, confines every path-bearing value (path_values), and only then validates in full.
SHAPE_ONLY: dict[str, Any] = {"open_files": False}


def may_open_files(info: ValidationInfo) -> bool:
    """Whether a validator may open the files a recipe names (False under SHAPE_ONLY)."""
    return bool((info.context or {}).get("open_files", True))


class StageConfig(Strict):
    enabled: bool = True


StageConfigT = TypeVar("StageConfigT", bound=StageConfig)


class Role(StrEnum):
    """What a stage does to the stream, for commands that run part of a recipe (`curate dedup`)."""

    PREPARE = "prepare"  # turns input records into documents with text (extract): every command needs it
    FILTER = "filter"  # keeps, rejects or edits documents by their content
    DEDUP = "dedup"  # removes whole documents that repeat others: what `curate dedup` runs
    SHARDS = "shards"  # the shard tail (mixing, tokenize)


@dataclass(frozen=True)
class Signal:
    """How the run report shows one numeric annotation (Dolma's taggers declare their attributes once)."""

    name: str
    #: keys inside the stage's config (dotted) whose values are this signal's thresholds, drawn dashed
    thresholds: tuple[str, ...] = ()
    log: bool = False  # heavy-tailed: binned on a log10 axis
    chart: bool = True  # False: bookkeeping (a count), not a quality signal
    model: bool = False  # a model's score: shown first, with a note when its stage is off


@dataclass(frozen=True)
class Fixed:
    """``annotations`` of a stage whose columns do not depend on its config."""

    types: Mapping[str, str]

    def __call__(self, config: Any) -> Mapping[str, str]:
        return dict(self.types)


NO_ANNOTATIONS = Fixed({})


@dataclass(frozen=True, kw_only=True)
class StageDef(Generic[StageConfigT]):
    """Everything about a recipe stage, declared once in its own module.

    ``name`` is the key under `stages:` and in stats.json; ``config`` its model; ``annotations(config)``
    the columns it writes with that config (arrow type names, as NeMo Curator's ``outputs()``: known
    without building the stage or loading a model); ``signals`` how the report draws them; ``role`` which
    commands run it. Its place in the pipeline is its line in `pipelines/stage_order.py`; the files its
    config names are the config's path fields. Filter stages (`curate.filters.base.FilterStageDef`) and
    Beam stages (`curate.pipelines.stage.TransformStageDef`) add their implementation; a plain StageDef is
    a recipe section implemented by the shard tail (mixing, tokenize).
    """

    name: str
    config: type[StageConfigT]
    annotations: Callable[[StageConfigT], Mapping[str, str]] = NO_ANNOTATIONS
    signals: tuple[Signal, ...] = ()
    role: Role = Role.FILTER


# What a credential's option is called: a secret, password, token, key (access, private, API, a key file),
# credential or connection string. Not "key" alone: dataflow_kms_key names a key, it does not hold one.
CREDENTIAL_NAME = re.compile(
    r"secret|passw(or)?d|token|credential|connection_?string|access_?key|private_?key|api_?key|key_?file"
    r"|(^|_)sas(_|$)|(^|_)auth_?key",
    re.IGNORECASE,
)


def names_credential(option: str) -> bool:
    """Whether an option's name (``--name=value`` or ``name``) says it carries a credential: the rule that
    recipes (pipelines/runner.py adds Beam's own declarations to it) and version records share."""
    return bool(CREDENTIAL_NAME.search(option.removeprefix("--").split("=", 1)[0]))

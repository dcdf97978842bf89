"""What every recipe section is built from: strict pydantic models and the stage declaration.

Unknown keys are errors (a typo in a threshold must not be silently ignored), and assignments are
validated, so a config changed in code is as checked as one read from YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Threshold types: a value out of range would reject everything (or nothing) without a word.
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]  # a share of lines, characters or words
NonNegative = Annotated[float, Field(ge=0.0)]  # a ratio that may exceed 1, a length
Count = Annotated[int, Field(ge=0)]


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

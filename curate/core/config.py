"""What every recipe section is built from: strict pydantic models and the stage declaration.

Unknown keys are errors (a typo in a threshold must not be silently ignored), and assignments are
validated, so a config changed in code is as checked as one read from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


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


class StageConfig(Strict):
    enabled: bool = True


StageConfigT = TypeVar("StageConfigT", bound=StageConfig)


@dataclass(frozen=True)
class StageDef(Generic[StageConfigT]):
    """A recipe stage: its name (the key under `stages:` and in stats.json) and its config model.

    Filter stages (`curate.filters.base.FilterStageDef`) and Beam stages
    (`curate.pipelines.stage.TransformStageDef`) add their implementation; a plain StageDef is a recipe
    section implemented by the shard tail (mixing, tokenize).
    """

    name: str
    config: type[StageConfigT]

"""The recipe schema: what a run reads, which stages it runs with which settings, where it writes.

Composed from the parts' own config models: the reader's input section, the runner's, and one section
per stage in `stage_order`, so a new stage appears here without an edit. Stage names and keys are a
public contract (recipes are kept under version control by users): they only ever gain fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, create_model, field_validator, model_validator

from curate.core.config import NamesPath, StageConfigT, StageDef, Strict
from curate.pipelines import mixing, token_shards
from curate.pipelines.readers import InputConfig
from curate.pipelines.runner import RunnerConfig, StorageConfig
from curate.pipelines.stage_order import ALL_STAGES


class OutputConfig(Strict):
    path: Annotated[str, NamesPath("folder", writes=True)] = "out"
    documents: bool = Field(True, description="Write kept documents (text + annotations) as Parquet.")
    rejected: bool = Field(True, description="Write rejected documents with stage and reason as Parquet.")
    dataset: str | None = Field(None, description="Commit the run to this dataset in the version store.")
    branch: str = Field("main", description="Branch of `dataset` that the run's commit goes on.")


class RunConfig(Strict):
    """How a run is cut into segments: each is its own pipeline, committed (appended) when done, so a
    killed run resumes after the last finished segment and memory is bounded by a segment's size."""

    segment_files: int | None = Field(None, ge=1, description="Input files per segment.")
    segment_bytes: int | None = Field(
        None,
        ge=1,
        description="Input bytes per segment; neither set: 256 MiB on the direct runner, else one.",
    )


class StagesBase(Strict):
    def of(self, stage: StageDef[StageConfigT]) -> StageConfigT:
        """This recipe's config for ``stage`` (typed, unlike attribute access on the composed model)."""
        return getattr(self, stage.name)


if TYPE_CHECKING:  # the fields exist only at run time; code reaches them through StagesBase.of
    StagesConfig = StagesBase
else:  # one field per stage, named by the stage, defaulting to its defaults
    StagesConfig = create_model(
        "StagesConfig",
        __base__=StagesBase,
        **{stage.name: (stage.config, Field(default_factory=stage.config)) for stage in ALL_STAGES},
    )


class Config(Strict):
    input: InputConfig = Field(default_factory=InputConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    stages: StagesConfig = Field(default_factory=StagesConfig)

    @model_validator(mode="after")
    def _mixing_needs_tokenize(self) -> Config:
        # Mixing targets shares of output tokens and happens while the shards are written.
        if self.stages.of(mixing.STAGE).enabled and not self.stages.of(token_shards.STAGE).enabled:
            raise ValueError("stages.mixing needs stages.tokenize enabled (mixing targets token shares)")
        return self

    @field_validator("input", mode="before")
    @classmethod
    def _input_as_list(cls, value: Any) -> Any:
        # `input: path/*.warc.gz` and `input: [a, b]` are both natural to write.
        if isinstance(value, str | list):
            return {"paths": [value] if isinstance(value, str) else value}
        return value

    @field_validator("output", mode="before")
    @classmethod
    def _output_as_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

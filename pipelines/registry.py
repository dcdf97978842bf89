"""Where each recipe stage is implemented, in pipeline order.

Filter stages point at a `stage_spec(stage_config) -> filters.base.FilterSpec` function in `filters/`
(pure logic; the generic `FilterStage` wraps it for Beam). Other stages point at a `StageTransform`
subclass taking ``(stage_config, config)``. A stage enabled in a recipe whose implementation is absent
fails the run before anything starts, with the stage's name: a run never pretends to apply it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from curate.pipelines.stage import FilterStage, StageTransform

from curate.config import Config
from curate.core.errors import CurateError


@dataclass(frozen=True)
class StageImpl:
    kind: Literal["filter", "transform"]
    target: str  # "module:attribute"


# Order matters: cheap URL checks before extraction, models after cheap rules, dedup on survivors only.
STAGES: dict[str, StageImpl] = {
    "url_filter": StageImpl("filter", "curate.filters.url_filter:stage_spec"),
    "extract": StageImpl("transform", "curate.pipelines.extract:ExtractStage"),
    "langid": StageImpl("filter", "curate.filters.langid:stage_spec"),
    "quality": StageImpl("filter", "curate.filters.quality:stage_spec"),
    "classifier": StageImpl("transform", "curate.pipelines.classifier:ClassifierStage"),
    "toxicity": StageImpl("filter", "curate.filters.toxicity:stage_spec"),
    "perplexity": StageImpl("filter", "curate.filters.perplexity:stage_spec"),
    "dedup_exact": StageImpl("transform", "curate.pipelines.dedup:ExactDedup"),
    "dedup_minhash": StageImpl("transform", "curate.pipelines.dedup:MinHashDedup"),
    # Benchmark text and PII are looked for in what survives dedup, right before tokenizing.
    "decontaminate": StageImpl("filter", "curate.filters.decontaminate:stage_spec"),
    "pii": StageImpl("filter", "curate.filters.pii:stage_spec"),
}
# `mixing` and `tokenize` are not registry stages: mixing samples by token counts, so both live in
# pipelines/shards.py (TokenizeAndShard), which turns the surviving documents into shards.


def _resolve(stage: str, target: str):
    module_name, attribute = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise CurateError(
                f"stage '{stage}' is enabled but not implemented in this version of curate "
                f"(no module {module_name}); set stages.{stage}.enabled: false"
            ) from None
        raise
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise CurateError(
            f"stage '{stage}' is enabled but not implemented ({target} missing); "
            f"set stages.{stage}.enabled: false"
        ) from None


def enabled_stages(config: Config) -> list[StageTransform]:
    """The transforms for the recipe's enabled stages, in pipeline order; fails early if one is missing."""
    transforms: list[StageTransform] = []
    for name, impl in STAGES.items():
        stage_config = getattr(config.stages, name)
        if not stage_config.enabled:
            continue
        built = _resolve(name, impl.target)
        if impl.kind == "filter":
            spec = built(stage_config)
            batch_size = getattr(stage_config, "batch_size", 256)
            transforms.append(FilterStage(name, spec.make, spec.annotation_types, batch_size))
        else:
            transforms.append(built(stage_config, config))
    return transforms

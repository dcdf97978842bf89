"""Every stage of a run, in pipeline order: adding a stage is its own file plus one line here.

Order matters: cheap URL checks before extraction, models after cheap rules, dedup on survivors only.
The shard tail (mixing, then tokenize) always comes last; see pipelines/token_shards.py.
"""

from __future__ import annotations

from typing import Any

from curate.core.config import StageDef
from curate.filters import decontaminate, langid, perplexity, pii, quality, toxicity, url_filter
from curate.pipelines import classifier, dedup_exact, dedup_minhash, extract, line_dedup, mixing, token_shards
from curate.pipelines.dedup_index import Versions
from curate.pipelines.stage import StageTransform, TransformStageDef, build_filter_stage

DOCUMENT_STAGES: tuple[StageDef[Any], ...] = (
    url_filter.STAGE,
    extract.STAGE,
    line_dedup.STAGE,  # boilerplate lines go before the rules and models see the text (CCNet's order)
    langid.STAGE,
    quality.STAGE,
    classifier.STAGE,
    toxicity.STAGE,
    perplexity.STAGE,
    dedup_exact.STAGE,
    dedup_minhash.STAGE,
    decontaminate.STAGE,  # benchmark text and PII: looked for in what survives dedup, before the shards
    pii.STAGE,
)
SHARD_STAGES: tuple[StageDef[Any], ...] = (mixing.STAGE, token_shards.STAGE)
ALL_STAGES: tuple[StageDef[Any], ...] = DOCUMENT_STAGES + SHARD_STAGES


def build_stage(stage: StageDef[Any], config: Any, versions: Versions) -> StageTransform:
    """The Beam transform for one enabled document stage (checked in the driver, before any worker)."""
    if isinstance(stage, TransformStageDef):
        return stage.build(config, versions)
    return build_filter_stage(stage, config)  # type: ignore[arg-type]

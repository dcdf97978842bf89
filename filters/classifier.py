"""Model-based quality scores: fastText supervised classifiers (DCLM's OH-2.5+ELI5, Dolma's, FineWeb-2's,
or one trained with `curate classifier train`), each named in the recipe.

Each model annotates ``<name>_score``, the probability of its positive label (``__label__hq`` in DCLM's
models). Text is put on one line with whitespace collapsed, the same normalisation `curate classifier
train` applies to its training data, so scores at run time match what the model saw. `min_score` decides
here; `keep_top_fraction` and `buckets` need the whole run's scores and are decided in Beam
(pipelines/classifier.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from curate.filters.base import Annotations, Doc, FilterSpec
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.core.errors import CurateError

LABEL_PREFIX = "__label__"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ClassifierModelConfig(_Strict):
    """One fastText model of the `classifier` stage."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$", description="Annotations are <name>_score, <name>_bucket."
    )
    path: str = Field(description="A fastText supervised model (.bin or .ftz).")
    positive_label: str = Field("__label__hq", description="The label whose probability is the score.")
    min_score: float | None = Field(None, ge=0.0, le=1.0, description="Reject below this score.")
    keep_top_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="Keep the best-scored documents holding this share of tokens."
    )
    buckets: int | None = Field(
        None, ge=2, le=1000, description="Annotate <name>_bucket: 0..N-1 by token-weighted percentiles."
    )

    @property
    def label(self) -> str:
        return (
            self.positive_label
            if self.positive_label.startswith(LABEL_PREFIX)
            else LABEL_PREFIX + self.positive_label
        )


class ClassifierConfig(_Strict):
    """The `classifier` stage: any number of models, scored in one pass."""

    enabled: bool = False
    models: list[ClassifierModelConfig] = Field(default_factory=list)
    histogram_bins: int = Field(
        1 << 16, ge=16, le=1 << 20, description="Score resolution of the run-wide percentiles."
    )
    batch_size: int = Field(256, ge=1, description="Documents per annotate call.")

    @model_validator(mode="after")
    def _models(self) -> ClassifierConfig:
        if self.enabled and not self.models:
            raise ValueError("stages.classifier needs at least one model (name, path)")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"classifier model names must be distinct: {names}")
        return self


def classifier_text(text: str) -> str:
    """What a model sees: one line (fastText predicts per line), whitespace runs as one space."""
    return " ".join(text.split())


def load_model(model: ClassifierModelConfig, key: str) -> Any:
    """The fastText model, refusing one that lacks the positive label (a one-line config error)."""
    from curate.filters.langid import load_fasttext

    loaded = load_fasttext(model.path, f"{key}.path")
    labels = loaded.get_labels()
    if model.label not in labels:
        raise CurateError(
            f"{key}.positive_label: {model.path} has no label {model.label} "
            f"(its labels: {', '.join(labels[:10])})"
        )
    return loaded


def positive_probability(model: Any, text: str, label: str) -> float:
    labels, probabilities = model.predict(classifier_text(text), k=-1)
    for found, probability in zip(labels, probabilities, strict=True):
        if found == label:
            return min(1.0, max(0.0, float(probability)))
    return 0.0


def annotation_types(cfg: ClassifierConfig) -> dict[str, str]:
    types: dict[str, str] = {}
    for model in cfg.models:
        types[f"{model.name}_score"] = "float64"
        if model.buckets:
            types[f"{model.name}_bucket"] = "int32"
    return types


class QualityClassifier:
    """Scores every document with every model; rejects below a model's `min_score`."""

    def __init__(self, cfg: ClassifierConfig, models: Sequence[Any] | None = None):
        self.cfg = cfg
        self.annotation_types = {k: v for k, v in annotation_types(cfg).items() if k.endswith("_score")}
        self._models = (
            list(models)
            if models is not None
            else [load_model(m, f"stages.classifier.models[{i}]") for i, m in enumerate(cfg.models)]
        )

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        out: list[Annotations] = []
        for doc in docs:
            text = doc.get("text") or ""
            out.append(
                {
                    f"{spec.name}_score": positive_probability(model, text, spec.label)
                    for spec, model in zip(self.cfg.models, self._models, strict=True)
                }
            )
        return out

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        for spec in self.cfg.models:
            if spec.min_score is not None and annotations[f"{spec.name}_score"] < spec.min_score:
                return f"{spec.name}_below_min_score"
        return None


def stage_spec(cfg: ClassifierConfig) -> FilterSpec:
    for i, model in enumerate(cfg.models):
        load_model(model, f"stages.classifier.models[{i}]")  # in the driver: a wrong path fails the run now
    return FilterSpec(partial(QualityClassifier, cfg), {f"{m.name}_score": "float64" for m in cfg.models})


# ------------------------------------------------------------------------ run-wide percentiles


def score_bin(score: float, bins: int) -> int:
    """The histogram bin of a score in [0, 1] (1.0 falls in the last bin)."""
    return min(bins - 1, max(0, int(score * bins)))


def bucket_edges(histogram: Sequence[int], buckets: int) -> list[int]:
    """Bin indices where buckets 1..N-1 start: bucket k holds the bins from edge k on, so that each bucket
    gets as close to 1/N of the token weight as whole bins allow (Nemotron-CC's token-weighted
    percentiles). Bins are never split: equal scores always share a bucket."""
    import numpy as np

    cumulative = np.cumsum(np.asarray(histogram, dtype=np.float64))
    total = cumulative[-1] if len(cumulative) else 0.0
    if total <= 0:
        return [0] * (buckets - 1)
    # first bin whose cumulative weight (through it, half of it counted) passes k/N of the total
    midpoints = cumulative - np.asarray(histogram, dtype=np.float64) / 2
    return [int(np.searchsorted(midpoints, total * k / buckets, side="left")) for k in range(1, buckets)]


def bucket_of(bin_index: int, edges: Sequence[int]) -> int:
    import bisect

    return bisect.bisect_right(list(edges), bin_index)


def top_fraction_threshold(histogram: Sequence[int], fraction: float) -> int:
    """The lowest bin kept so that the kept bins (that one and above) hold at least ``fraction`` of the
    token weight, and no bin more than needed."""
    import numpy as np

    weights = np.asarray(histogram, dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return 0
    from_top = np.cumsum(weights[::-1])
    needed = int(np.searchsorted(from_top, fraction * total - 1e-9, side="left"))
    return len(weights) - 1 - min(needed, len(weights) - 1)

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
from typing import Annotated, Any

from pydantic import Field, model_validator

from curate.core.config import MAX_BATCH, NamesPath, StageConfig, Strict
from curate.core.errors import CurateError
from curate.filters.base import Annotations, Doc, FilterSpec

LABEL_PREFIX = "__label__"


class ClassifierModelConfig(Strict):
    """One fastText model of the `classifier` stage."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$", description="Annotations are <name>_score, <name>_bucket."
    )
    path: Annotated[str, NamesPath("file")] = Field(description="A fastText supervised model (.bin or .ftz).")
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


class ClassifierConfig(StageConfig):
    """The `classifier` stage: any number of models, scored in one pass."""

    enabled: bool = False
    models: list[ClassifierModelConfig] = Field(default_factory=list)
    tokenizer: Annotated[str, NamesPath("file", builtins=("gpt2",))] = Field(
        "gpt2", description="Counts the tokens that weigh percentiles: 'gpt2' or a tokenizer.json path."
    )
    histogram_bins: int = Field(
        1 << 16, ge=16, le=1 << 20, description="Score resolution of the run-wide percentiles."
    )
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="Documents per annotate call.")

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
    return FilterSpec(partial(QualityClassifier, cfg))


# ------------------------------------------------------------------------ run-wide percentiles
#
# Scores go into a coarse histogram over [0, 1]; the few coarse bins that hold a cut point are then
# histogrammed again, finely. A position is (coarse, fine) packed in one integer, 2**-28 wide by default:
# finer than fastText's float32 probabilities near 0.5, so even a model whose scores all sit within 1e-4
# of each other is cut between documents, not inside a bin. All sums are of integers (token counts), so
# the cut points are the same on any runner with any number of workers.

FINE_BINS = 4096


def coarse_bin(score: float, bins: int) -> int:
    """The coarse histogram bin of a score in [0, 1] (1.0 falls in the last bin)."""
    return min(bins - 1, max(0, int(score * bins)))


def position(score: float, bins: int) -> int:
    """Where a score sorts, at (coarse, fine) resolution, as one integer."""
    scaled = min(max(score, 0.0), 1.0) * bins
    coarse = min(bins - 1, int(scaled))
    fine = min(FINE_BINS - 1, max(0, int((scaled - coarse) * FINE_BINS)))
    return coarse * FINE_BINS + fine


def _bucket_targets(total: int, buckets: int) -> list[float]:
    return [total * k / buckets for k in range(1, buckets)]


def refine_bins(histogram: Sequence[int], buckets: int | None, fraction: float | None) -> list[int]:
    """The coarse bins whose fine histogram the cut points need."""
    import numpy as np

    weights = np.asarray(histogram, dtype=np.int64)
    total = int(weights.sum())
    if total == 0:
        return []
    through = np.cumsum(weights)
    nonempty = np.flatnonzero(weights)
    needed: set[int] = set()
    for target in _bucket_targets(total, buckets) if buckets else []:
        first = int(np.searchsorted(through, target, side="left"))  # first bin reaching the target
        needed.add(first)
        later = nonempty[nonempty > first]
        if len(later):  # the cut may fall on the next document, in the next non-empty bin
            needed.add(int(later[0]))
    if fraction:
        from_top = np.cumsum(weights[::-1])
        needed.add(len(weights) - 1 - int(np.searchsorted(from_top, fraction * total - 1e-9, side="left")))
    return sorted(b for b in needed if 0 <= b < len(weights))


def cut_positions(
    histogram: Sequence[int],
    fine: dict[int, Sequence[int]],
    buckets: int | None,
    fraction: float | None,
) -> dict[str, Any]:
    """Bucket edges (bucket k starts at edges[k-1]) and the lowest kept position, from the coarse
    histogram and the fine histograms of `refine_bins`.

    A document's bucket is where the midpoint of its position's weight falls in the cumulative token
    weight, so each bucket gets as close to 1/N of the tokens as whole positions allow (Nemotron-CC's
    token-weighted percentiles); equal scores always share a bucket. `keep_top_fraction` keeps the
    fewest top positions that hold at least that share of the tokens."""
    import numpy as np

    weights = np.asarray(histogram, dtype=np.int64)
    total = int(weights.sum())
    before = np.concatenate([[0], np.cumsum(weights)[:-1]])
    cuts: dict[str, Any] = {"edges": None, "keep_from": None}
    if buckets:
        refined = sorted(fine)
        edges = []
        for target in _bucket_targets(total, buckets) if total else []:
            edge = None
            for coarse in refined:
                counts = np.asarray(fine[coarse], dtype=np.int64)
                through = before[coarse] + np.cumsum(counts)
                hits = np.flatnonzero((counts > 0) & (through - counts / 2 >= target))
                if len(hits):
                    edge = coarse * FINE_BINS + int(hits[0])
                    break
            edges.append(edge if edge is not None else len(weights) * FINE_BINS)
        cuts["edges"] = edges or [0] * (buckets - 1)
    if fraction:
        keep_from = 0
        if total:
            after = total - before - weights  # weight above each coarse bin
            for coarse in sorted(fine, reverse=True):
                counts = np.asarray(fine[coarse], dtype=np.int64)
                from_here = after[coarse] + np.cumsum(counts[::-1])[::-1]  # weight at or above each fine bin
                enough = np.flatnonzero(from_here >= fraction * total - 1e-9)
                if len(enough):
                    keep_from = coarse * FINE_BINS + int(enough[-1])
                    break
        cuts["keep_from"] = keep_from
    return cuts


def bucket_of(where: int, edges: Sequence[int]) -> int:
    import bisect

    return bisect.bisect_right(list(edges), where)

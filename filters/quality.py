"""The `quality` stage: Gopher repetition, Gopher quality, C4 and FineWeb rules over shared text units.

The rejection reason is the first failing rule in FineWeb's order (datatrove examples/fineweb.py: Gopher
repetition, Gopher quality, C4, FineWeb). A kept document gets every signal of the enabled rule groups; a
rejected one gets those computed up to the rule that rejects it, since the rules after it cannot change
the verdict (on the bench crawl, where the stage rejects 57% of what it sees, that saves a quarter of its
CPU). With `all_signals: true` every document gets every signal, so thresholds can be re-tuned on the
rejected documents too.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from pydantic import Field, field_validator

from curate.core.config import MAX_BATCH, Signal, StageConfig
from curate.filters import c4, fineweb, gopher
from curate.filters.base import Annotations, Doc, FilterSpec, FilterStageDef
from curate.filters.c4 import C4Config
from curate.filters.fineweb import FineWebConfig
from curate.filters.gopher import GopherQualityConfig, GopherRepetitionConfig
from curate.filters.text_units import TextUnits, profile_for


def _group_toggle(value: Any) -> Any:
    # `c4: false` is the natural way to switch a whole group off.
    return {"enabled": value} if isinstance(value, bool) else value


class QualityConfig(StageConfig):
    """Heuristic rules, applied in FineWeb's order; each rejection names its rule (e.g. c4_lorem_ipsum)."""

    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="Documents per annotate call.")
    all_signals: bool = Field(
        False,
        description="Compute every signal of a rejected document too; by default its rules stop at the "
        "first that rejects it, and the later ones' signals are null in rejected/*.parquet.",
    )

    _groups = field_validator("gopher_repetition", "gopher_quality", "c4", "fineweb", mode="before")(
        _group_toggle
    )


EMPTY = "empty_text"  # nothing to judge: extraction left no text


class QualityFilter:
    """Annotates Gopher/C4/FineWeb signals; decides with the recipe's thresholds."""

    def __init__(self, cfg: QualityConfig):
        self.cfg = cfg
        self.annotation_types = annotation_types(cfg)

    def _units(self, doc: Doc) -> TextUnits:
        profile = profile_for(doc.get("lang"), self.cfg.gopher_quality.stop_words)
        return TextUnits(doc.get("text") or "", profile)

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        return [self._signals(self._units(doc)) for doc in docs]

    def _signals(self, units: TextUnits) -> Annotations:
        """The enabled groups' signals in FineWeb's order, up to the first failing rule (all of them with
        `all_signals`); `decide` then finds that rule again from them."""
        cfg = self.cfg
        signals: dict[str, Any] = {}
        stop_early = not cfg.all_signals
        if cfg.gopher_repetition.enabled:
            # the paragraph and line rules come first and need no tokens: a document they reject is
            # never split into words
            for part in (gopher.duplicate_signals, gopher.ngram_signals):
                signals.update(part(units))
                if stop_early and gopher.repetition_reason(signals, cfg.gopher_repetition) is not None:
                    return signals
        if cfg.gopher_quality.enabled:
            signals.update(gopher.quality_signals(units))
            if (
                stop_early
                and gopher.quality_reason(signals, cfg.gopher_quality, units.checks_word_length) is not None
            ):
                return signals
        fineweb_units = units
        if cfg.c4.enabled:
            # FineWeb's rules run on what C4's line rules keep (datatrove examples/fineweb.py)
            c4_signals, fineweb_units = c4.signals(units, cfg.c4)
            signals.update(c4_signals)
            if cfg.c4.remove_lines and fineweb_units.text != units.text:
                signals["text"] = fineweb_units.text  # applied to a copy by the pipeline
            if stop_early and c4.reason(signals, cfg.c4) is not None:
                return signals
        if cfg.fineweb.enabled:
            signals.update(fineweb.signals(fineweb_units, cfg.fineweb))
        return signals

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        cfg = self.cfg
        if not (doc.get("text") or "").strip() and "text" not in annotations:
            return EMPTY
        reason = None
        if cfg.gopher_repetition.enabled:
            reason = gopher.repetition_reason(annotations, cfg.gopher_repetition)
        if reason is None and cfg.gopher_quality.enabled:
            checks_length = self._units(doc).checks_word_length
            reason = gopher.quality_reason(annotations, cfg.gopher_quality, checks_length)
        if reason is None and cfg.c4.enabled:
            reason = c4.reason(annotations, cfg.c4)
        if reason is None and cfg.fineweb.enabled:
            reason = fineweb.reason(annotations, cfg.fineweb)
        return reason


def annotation_types(cfg: QualityConfig) -> dict[str, str]:
    types: dict[str, str] = {}
    if cfg.gopher_repetition.enabled:
        types.update(gopher.REPETITION_ANNOTATIONS)
    if cfg.gopher_quality.enabled:
        types.update(gopher.QUALITY_ANNOTATIONS)
    if cfg.c4.enabled:
        types.update(c4.ANNOTATIONS)
    if cfg.fineweb.enabled:
        types.update(fineweb.ANNOTATIONS)
    return types


def stage_spec(cfg: QualityConfig) -> FilterSpec:
    return FilterSpec(partial(QualityFilter, cfg))


# How the report draws the rules' signals: each with the thresholds (keys of this stage's config) that
# decide on it. Gopher's repetition signals carry their threshold's name: gopher_dup_para_frac, ...
SIGNALS = (
    Signal(
        "gopher_words",
        thresholds=("gopher_quality.min_doc_words", "gopher_quality.max_doc_words"),
        log=True,
    ),
    Signal(
        "gopher_avg_word_length",
        thresholds=("gopher_quality.min_avg_word_length", "gopher_quality.max_avg_word_length"),
    ),
    Signal("gopher_alpha_words_ratio", thresholds=("gopher_quality.min_alpha_words_ratio",)),
    Signal("gopher_stop_words", thresholds=("gopher_quality.min_stop_words",)),
    Signal("gopher_hash_ratio", thresholds=("gopher_quality.max_symbol_word_ratio",)),
    Signal("gopher_bullet_lines_ratio", thresholds=("gopher_quality.max_bullet_lines_ratio",)),
    Signal("gopher_ellipsis_lines_ratio", thresholds=("gopher_quality.max_ellipsis_lines_ratio",)),
    Signal("c4_sentences", thresholds=("c4.min_sentences",)),
    Signal("fineweb_line_punct_ratio", thresholds=("fineweb.line_punct_thr",)),
    Signal("fineweb_short_line_ratio", thresholds=("fineweb.short_line_thr",)),
    Signal("fineweb_char_dup_ratio", thresholds=("fineweb.char_duplicates_ratio",)),
    Signal("fineweb_list_ratio", thresholds=("fineweb.new_line_ratio",)),
    *(
        Signal(f"gopher_{key}", thresholds=(f"gopher_repetition.{key}",))
        for key in ("dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac")
        + tuple(f"top_{n}gram_char_frac" for n in (2, 3, 4))
        + tuple(f"dup_{n}gram_char_frac" for n in range(5, 11))
    ),
)

STAGE = FilterStageDef(
    name="quality", config=QualityConfig, spec=stage_spec, annotations=annotation_types, signals=SIGNALS
)

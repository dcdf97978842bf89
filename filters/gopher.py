"""Gopher's heuristic rules (Rae et al. 2021, arXiv:2112.11446, sec. A.1.1 and Table A1).

Definitions follow datatrove 0.10.1 (gopher_repetition_filter.py, gopher_quality_filter.py) so that
results and the benchmark are comparable; thresholds live in `GopherRepetitionConfig` and
`GopherQualityConfig` below (the `quality` stage's `gopher_repetition` and `gopher_quality` sections).
Word n-grams are hashed to 64-bit integers with numpy (one rolling hash per n) instead of joining
strings, which is where datatrove spends most of its time.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from curate.core.config import Count, Fraction, NonNegative, Strict
from curate.filters import native_words
from curate.filters.text_units import TextUnits, duplicates

# Quality rule groups. A threshold set to null turns that one rule off (its signal is still annotated);
# `enabled: false` turns the whole group off. Defaults are the published values as implemented in
# datatrove 0.10.1 (src/datatrove/pipeline/filters/*), the reference the benchmark compares against.


class GopherRepetitionConfig(Strict):
    """Gopher repetition rules: Rae et al. 2021 (arXiv:2112.11446), Table A1."""

    enabled: bool = True
    dup_para_frac: Fraction | None = Field(0.3, description="Max fraction of duplicated paragraphs.")
    dup_para_char_frac: Fraction | None = Field(0.2, description="Max chars in duplicated paragraphs / all.")
    dup_line_frac: Fraction | None = Field(0.3, description="Max fraction of duplicated lines.")
    dup_line_char_frac: Fraction | None = Field(0.2, description="Max chars in duplicated lines / all.")
    top_2gram_char_frac: Fraction | None = Field(0.2, description="Max chars of the top word 2-gram / all.")
    top_3gram_char_frac: Fraction | None = 0.18
    top_4gram_char_frac: Fraction | None = 0.16
    dup_5gram_char_frac: Fraction | None = Field(0.15, description="Max chars in repeated 5-grams / all.")
    dup_6gram_char_frac: Fraction | None = 0.14
    dup_7gram_char_frac: Fraction | None = 0.13
    dup_8gram_char_frac: Fraction | None = 0.12
    dup_9gram_char_frac: Fraction | None = 0.11
    dup_10gram_char_frac: Fraction | None = 0.10


class GopherQualityConfig(Strict):
    """Gopher quality rules: Rae et al. 2021 (arXiv:2112.11446), sec. A.1.1."""

    enabled: bool = True
    min_doc_words: Count | None = 50
    max_doc_words: Count | None = 100_000
    min_avg_word_length: NonNegative | None = 3
    max_avg_word_length: NonNegative | None = 10
    max_symbol_word_ratio: NonNegative | None = Field(0.1, description="'#' or ellipses per word.")
    max_bullet_lines_ratio: Fraction | None = Field(0.9, description="Lines starting with a bullet or '-'.")
    max_ellipsis_lines_ratio: Fraction | None = Field(0.3, description="Lines ending with an ellipsis.")
    min_alpha_words_ratio: Fraction | None = Field(0.8, description="Words with a letter / all tokens.")
    min_stop_words: Count | None = Field(2, description="Distinct stop words of the document's language.")
    stop_words: dict[str, list[str]] = Field(
        default_factory=dict, description="Replace a language's stop words: {lang: [words]}."
    )

    @model_validator(mode="after")
    def _ranges_are_not_empty(self) -> GopherQualityConfig:
        # min above max would reject every document
        for low, high in (("min_doc_words", "max_doc_words"), ("min_avg_word_length", "max_avg_word_length")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low} ({lo}) is above {high} ({hi}): every document would be rejected")
        return self


TOP_NGRAMS = (2, 3, 4)  # Table A1: top n-gram character fraction
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)  # Table A1: duplicate n-gram character fraction
_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime: mixes word hashes into n-gram hashes

REPETITION_ANNOTATIONS: dict[str, str] = {
    "gopher_dup_para_frac": "float32",
    "gopher_dup_para_char_frac": "float32",
    "gopher_dup_line_frac": "float32",
    "gopher_dup_line_char_frac": "float32",
    **{f"gopher_top_{n}gram_char_frac": "float32" for n in TOP_NGRAMS},
    **{f"gopher_dup_{n}gram_char_frac": "float32" for n in DUP_NGRAMS},
}

QUALITY_ANNOTATIONS: dict[str, str] = {
    "gopher_words": "int32",
    "gopher_avg_word_length": "float32",
    "gopher_hash_ratio": "float32",
    "gopher_ellipsis_ratio": "float32",
    "gopher_bullet_lines_ratio": "float32",
    "gopher_ellipsis_lines_ratio": "float32",
    "gopher_alpha_words_ratio": "float32",
    "gopher_stop_words": "int32",
}


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


# ------------------------------------------------------------------------------------- repetition


class _NGrams:
    """Occurrences of each n-gram of one length, from one sort of their hashes."""

    def __init__(self, hashes: np.ndarray):
        # np.unique(return_index=True) would sort stably (mergesort); an unstable sort plus a min per group
        # gives the same first occurrences and counts, in half the time. Group ids need no particular order.
        order = hashes.argsort()
        ordered = hashes[order]
        opens = np.empty(len(hashes), dtype=bool)
        opens[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=opens[1:])
        group_starts = np.flatnonzero(opens)
        self.first = np.minimum.reduceat(order, group_starts)
        self.counts = np.diff(group_starts, append=len(hashes))
        self.ids = np.empty(len(hashes), dtype=np.intp)
        self.ids[order] = np.cumsum(opens) - 1
        self.repeats = len(group_starts) < len(hashes)


def _top_ngram_chars(grams: _NGrams, starts: np.ndarray, n: int) -> int:
    """Count x characters (words joined by spaces) of the most frequent n-gram; ties: first seen."""
    top = grams.counts.max()
    i = int(grams.first[grams.counts == top].min())
    return int(top) * int(starts[i + n] - starts[i] + n - 1)


def _dup_ngram_chars(grams: _NGrams, starts: np.ndarray, n: int) -> int:
    """Characters (words joined without spaces) in repeated n-grams, skipping past each repeat.

    datatrove walks every position: an n-gram seen at an earlier *visited* position is a repeat, and
    the walk then jumps n positions. Only positions whose n-gram occurred before can be repeats, so we
    visit just those; a repeat is confirmed when an earlier occurrence was not jumped over: the first
    occurrence, or an earlier candidate the walk visited (remembered per n-gram, which keeps the walk
    linear in the document's length).
    """
    ids = grams.ids
    first_of = grams.first[ids]
    candidates = np.flatnonzero(first_of != np.arange(len(ids)))
    offsets = starts.tolist()
    skipped = bytearray(len(ids))  # 1: the walk jumped over this position
    visited = bytearray(len(grams.first))  # 1: a candidate of this n-gram was visited
    chars, resume = 0, 0  # positions below `resume` after a repeat were jumped over
    for position, earliest, gram in zip(
        candidates.tolist(), first_of[candidates].tolist(), ids[candidates].tolist(), strict=True
    ):
        if position < resume:
            continue
        seen = not skipped[earliest] or visited[gram]
        visited[gram] = 1
        if not seen:
            continue  # visited for the first time: later occurrences repeat it
        chars += offsets[position + n] - offsets[position]
        resume = position + n
        skipped[position + 1 : resume] = b"\x01" * (resume - position - 1)
    return chars


def duplicate_signals(units: TextUnits) -> dict[str, float]:
    """The paragraph and line rules of Gopher's repetition group: cheap, and first in datatrove's order."""
    text_len = len(units.text)
    paragraphs = units.paragraphs
    para_dups, para_chars = duplicates(paragraphs)
    lines = units.newline_lines
    line_dups, line_chars = duplicates(lines)
    return {
        "gopher_dup_para_frac": _ratio(para_dups, len(paragraphs)),
        "gopher_dup_para_char_frac": _ratio(para_chars, text_len),
        "gopher_dup_line_frac": _ratio(line_dups, len(lines)),
        "gopher_dup_line_char_frac": _ratio(line_chars, text_len),
    }


def ngram_signals(units: TextUnits) -> dict[str, float]:
    """The n-gram rules of Gopher's repetition group (they need the document's tokens)."""
    text_len = len(units.text)
    top, dup = _ngram_chars(units.tokens)  # datatrove counts n-grams over every token, punctuation included
    signals: dict[str, float] = {}
    for n, chars in zip(TOP_NGRAMS, top, strict=True):
        signals[f"gopher_top_{n}gram_char_frac"] = _ratio(chars, text_len)
    for n, chars in zip(DUP_NGRAMS, dup, strict=True):
        signals[f"gopher_dup_{n}gram_char_frac"] = _ratio(chars, text_len)
    return signals


def repetition_signals(units: TextUnits) -> dict[str, float]:
    return {**duplicate_signals(units), **ngram_signals(units)}


def _ngram_chars(words: list[str]) -> tuple[list[int], list[int]]:
    """Characters of the top n-gram (each n of TOP_NGRAMS) and of repeated n-grams (DUP_NGRAMS): from the
    Rust extension when it is built (filters/native_words.py), else with numpy."""
    if _NATIVE_NGRAMS is not None:
        try:
            return _NATIVE_NGRAMS(words, TOP_NGRAMS, DUP_NGRAMS)
        except UnicodeEncodeError:  # a lone surrogate has no UTF-8: count with numpy
            pass
    word_hashes = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    starts = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)), out=starts[1:])
    hashes, repeats = word_hashes, True
    top: list[int] = []
    dup: list[int] = []
    for n in range(2, max(DUP_NGRAMS) + 1):
        # hash of words[i:i+n] from the hash of words[i:i+n-1]; uint64 arithmetic wraps by design
        hashes = hashes[:-1] * _MULTIPLIER + word_hashes[n - 1 :] if len(hashes) > 1 else hashes[:0]
        # an n-gram that repeats contains a shorter one that repeats: once none does, none will
        grams = _NGrams(hashes) if repeats and len(hashes) else None
        repeats = grams is not None and grams.repeats
        if n in TOP_NGRAMS:
            if grams is not None:
                top.append(_top_ngram_chars(grams, starts, n))
            else:  # every n-gram occurs once: the first one is the "most frequent"
                top.append(int(starts[n] + n - 1) if len(hashes) else 0)
        elif n in DUP_NGRAMS:
            dup.append(_dup_ngram_chars(grams, starts, n) if grams is not None and repeats else 0)
    return top, dup


_NATIVE_NGRAMS = native_words.ngram_chars()


def repetition_reason(signals: dict[str, float], cfg: GopherRepetitionConfig) -> str | None:
    """First failing repetition rule, in datatrove's order, among the signals given."""
    limits = [
        ("gopher_dup_para_frac", cfg.dup_para_frac),
        ("gopher_dup_para_char_frac", cfg.dup_para_char_frac),
        ("gopher_dup_line_frac", cfg.dup_line_frac),
        ("gopher_dup_line_char_frac", cfg.dup_line_char_frac),
        *((f"gopher_top_{n}gram_char_frac", getattr(cfg, f"top_{n}gram_char_frac")) for n in TOP_NGRAMS),
        *((f"gopher_dup_{n}gram_char_frac", getattr(cfg, f"dup_{n}gram_char_frac")) for n in DUP_NGRAMS),
    ]
    for key, limit in limits:
        # a signal left out (the n-grams of a document its duplicated lines reject) has no say
        if limit is not None and signals.get(key, 0.0) > limit:
            return key.removesuffix("_char_frac") if "gram" in key else key
    return None


# ---------------------------------------------------------------------------------------- quality


def quality_signals(units: TextUnits) -> dict[str, float]:
    text, n_lines = units.text, len(units.lines)
    n_words, n_tokens = len(units.words), units.n_tokens
    return {
        "gopher_words": n_words,
        "gopher_avg_word_length": _ratio(units.word_chars, n_words),
        "gopher_hash_ratio": _ratio(text.count("#"), n_tokens),
        "gopher_ellipsis_ratio": _ratio(text.count("...") + text.count("…"), n_tokens),
        "gopher_bullet_lines_ratio": _ratio(units.bullet_lines, n_lines),
        "gopher_ellipsis_lines_ratio": _ratio(units.ellipsis_lines, n_lines),
        "gopher_alpha_words_ratio": _ratio(units.n_alpha_words, n_tokens),
        "gopher_stop_words": units.n_stop_words,
    }


def quality_reason(
    signals: dict[str, float], cfg: GopherQualityConfig, checks_word_length: bool
) -> str | None:
    """First failing quality rule, in datatrove's order and with its reason names."""
    s = signals
    symbol = cfg.max_symbol_word_ratio
    checks = [
        (cfg.min_doc_words is not None and s["gopher_words"] < cfg.min_doc_words, "gopher_short_doc"),
        (cfg.max_doc_words is not None and s["gopher_words"] > cfg.max_doc_words, "gopher_long_doc"),
        (
            checks_word_length
            and cfg.min_avg_word_length is not None
            and s["gopher_avg_word_length"] < cfg.min_avg_word_length,
            "gopher_below_avg_threshold",
        ),
        (
            checks_word_length
            and cfg.max_avg_word_length is not None
            and s["gopher_avg_word_length"] > cfg.max_avg_word_length,
            "gopher_above_avg_threshold",
        ),
        (symbol is not None and s["gopher_hash_ratio"] > symbol, "gopher_too_many_hashes"),
        (symbol is not None and s["gopher_ellipsis_ratio"] > symbol, "gopher_too_many_ellipsis"),
        (
            cfg.max_bullet_lines_ratio is not None
            and s["gopher_bullet_lines_ratio"] > cfg.max_bullet_lines_ratio,
            "gopher_too_many_bullets",
        ),
        (
            cfg.max_ellipsis_lines_ratio is not None
            and s["gopher_ellipsis_lines_ratio"] > cfg.max_ellipsis_lines_ratio,
            "gopher_too_many_end_ellipsis",
        ),
        (
            cfg.min_alpha_words_ratio is not None
            and s["gopher_alpha_words_ratio"] < cfg.min_alpha_words_ratio,
            "gopher_below_alpha_threshold",
        ),
        (
            cfg.min_stop_words is not None and s["gopher_stop_words"] < cfg.min_stop_words,
            "gopher_few_stop_words",
        ),
    ]
    return next((reason for failed, reason in checks if failed), None)

"""FineWeb's own heuristic rules (Penedo et al. 2024, arXiv:2406.17557, sec. 3.5), as in datatrove 0.10.1
fineweb_quality_filter.FineWebQualityFilter: line punctuation, short lines, duplicated line characters,
and newlines per word (list-like pages)."""

from __future__ import annotations

import regex
from pydantic import Field

from curate.core.config import Count, Fraction, NonNegative, Strict
from curate.filters.text_units import TextUnits, duplicates


class FineWebConfig(Strict):
    """FineWeb's own rules: Penedo et al. 2024 (arXiv:2406.17557), datatrove FineWebQualityFilter."""

    enabled: bool = True
    line_punct_thr: Fraction | None = Field(0.12, description="Min fraction of lines ending in punctuation.")
    line_punct_exclude_zero: bool = Field(False, description="Keep documents with no such line at all.")
    short_line_thr: Fraction | None = Field(0.67, description="Max fraction of short lines.")
    short_line_length: Count = Field(30, description="A line of at most this many characters is short.")
    char_duplicates_ratio: Fraction | None = Field(0.01, description="Max chars in duplicated lines / all.")
    new_line_ratio: NonNegative | None = Field(0.3, description="Max newlines per word (list-like pages).")


# Unicode's Sentence_Terminal property: the set datatrove's TERMINAL_PUNCTUATION was built from.
_ENDS_TERMINAL = regex.compile(r"\p{Sentence_Terminal}$")

ANNOTATIONS: dict[str, str] = {
    "fineweb_line_punct_ratio": "float32",
    "fineweb_short_line_ratio": "float32",
    "fineweb_char_dup_ratio": "float32",
    "fineweb_list_ratio": "float32",
}


def signals(units: TextUnits, cfg: FineWebConfig) -> dict[str, float]:
    lines = units.newline_lines
    n_lines = len(lines) or 1
    ends = _ENDS_TERMINAL.search
    last_chars = map((-1).__add__, map(len, lines))  # searched from there: the pattern ends the line
    short = cfg.short_line_length
    chars = len(units.text) - units.text.count("\n")
    return {
        "fineweb_line_punct_ratio": len(list(filter(None, map(ends, lines, last_chars)))) / n_lines,
        "fineweb_short_line_ratio": sum(map(short.__ge__, map(len, lines))) / n_lines,
        "fineweb_char_dup_ratio": duplicates(lines)[1] / chars if chars else 0.0,
        "fineweb_list_ratio": units.text.count("\n") / units.n_tokens if units.n_tokens else 0.0,
    }


def reason(s: dict[str, float], cfg: FineWebConfig) -> str | None:
    punct = s["fineweb_line_punct_ratio"]
    if (
        cfg.line_punct_thr is not None
        and punct < cfg.line_punct_thr
        and not (punct == 0 and cfg.line_punct_exclude_zero)
    ):
        return "fineweb_line_punct_ratio"
    if cfg.short_line_thr is not None and s["fineweb_short_line_ratio"] > cfg.short_line_thr:
        return "fineweb_short_line_ratio"
    if cfg.char_duplicates_ratio is not None and s["fineweb_char_dup_ratio"] > cfg.char_duplicates_ratio:
        return "fineweb_char_dup_ratio"
    if cfg.new_line_ratio is not None and s["fineweb_list_ratio"] > cfg.new_line_ratio:
        return "fineweb_list_ratio"
    return None

"""C4's heuristic rules (Raffel et al. 2020; tensorflow_datasets c4_utils), as datatrove 0.10.1 applies
them (c4_filters.C4QualityFilter): line rules drop lines, document rules reject the page.

Sentences are counted with a punctuation regex instead of NLTK's punkt (datatrove's per-line
``split_into_sentences``): the same boundaries except after abbreviations such as "Dr.", at a fraction of
the cost. The document's text is not rewritten (the number of lines each line rule drops is annotated
instead), but FineWeb's rules judge the lines C4 keeps, as in datatrove's FineWeb pipeline.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate, compress

from pydantic import Field

from curate.core.config import Count, Strict
from curate.filters.text_units import TextUnits, tokenize


class C4Config(Strict):
    """C4 rules: Raffel et al. 2020 (JMLR 21(140)) and tensorflow_datasets c4_utils, as in datatrove.

    Line rules (no terminal punctuation, javascript, policy, too few words, too long word) drop lines,
    which then do not count as sentences; documents are rejected for lorem ipsum, a curly bracket, or too
    few sentences left. The text is rewritten only with `remove_lines` (off by default, like FineWeb's
    recipe in curate; datatrove's C4QualityFilter always rewrites).
    """

    enabled: bool = True
    terminal_punct: bool = Field(
        False, description="Drop lines without terminal punctuation (C4: true; FineWeb's recipe: false)."
    )
    javascript: bool = Field(True, description="Drop lines mentioning 'javascript'.")
    policy: bool = Field(True, description="Drop lines about terms of use, privacy or cookie policies.")
    remove_citations: bool = Field(True, description="Strip [1], [edit], [citation needed] first.")
    min_words_per_line: Count | None = Field(3, description="Drop lines with fewer words.")
    max_word_length: Count | None = Field(1000, description="Drop lines with a longer word.")
    lorem_ipsum: bool = Field(True, description="Reject documents containing 'lorem ipsum'.")
    curly_bracket: bool = Field(True, description="Reject documents containing '{'.")
    min_sentences: Count | None = Field(5, description="Reject documents with fewer sentences left.")
    remove_lines: bool = Field(
        False, description="Rewrite kept documents without the lines C4's line rules drop (as datatrove)."
    )


# Wikipedia-style citation markers, removed before the punctuation check (datatrove CITATION_REGEX).
CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")  # C4 (c4_utils._END_MARKS + quotes, as in datatrove)
ELLIPSIS = "..."
POLICY_SUBSTRINGS = (  # tensorflow_datasets c4_utils._POLICY_SUBSTRINGS, via datatrove
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
# A sentence ends at terminal punctuation (plus closing quotes/brackets) followed by space, or at CJK
# full-width terminal punctuation followed by more text; never across a line break. Two patterns, each
# starting with one character class (so that `re` skips to the candidates in C instead of trying every
# position, as it does for an alternation): no match of one can hold a character of the other's, so their
# counts add up to those of the alternation `A|B`.
_SENTENCE_BREAKS = (
    re.compile(r"[.!?…][.!?…]*[\"'”’»)\]]*[^\S\n]+(?=\S)"),
    re.compile(r"[。！？][。！？]*(?=\S)"),
)

ANNOTATIONS: dict[str, str] = {
    "c4_sentences": "int32",
    "c4_lorem_ipsum": "int32",
    "c4_curly_bracket": "int32",
    "c4_javascript_lines": "int32",
    "c4_policy_lines": "int32",
    "c4_no_terminal_punct_lines": "int32",
    "c4_few_words_lines": "int32",
    "c4_long_word_lines": "int32",
}


def _ends_sentence(line: str) -> bool:
    return line.endswith(END_PUNCTUATION) and not line.endswith(ELLIPSIS)


def count_sentences(lines: list[str]) -> int:
    """Sentences in these lines (each non-empty line holds at least one), in one regex pass."""
    text = "\n".join(lines)
    breaks = sum(len(pattern.findall(text)) for pattern in _SENTENCE_BREAKS)
    return breaks + len(lines) - lines.count("")


def signals(units: TextUnits, cfg: C4Config) -> tuple[dict[str, int], TextUnits]:
    """Apply C4's line rules in C4's order; lorem ipsum and '{' only count on lines that survive the line
    rules before them. Also returns the units of the text C4 keeps, which FineWeb judges next.

    A line's fate depends on that line alone, so each rule runs over all the lines the rules before it
    kept (C-level `map`s and string searches, skipped when the text cannot match) instead of walking the
    lines one by one: the same lines dropped, counted against the same rule."""
    counts = dict.fromkeys(ANNOTATIONS, 0)
    rows, kept = _line_rules(units, cfg, counts)
    rows, kept = _phrase_rules(units.text, rows, kept, cfg, counts)
    counts["c4_sentences"] = count_sentences(kept)
    token_counts = units.line_token_counts
    kept_tokens = sum(map(token_counts.__getitem__, rows))
    if cfg.remove_citations and "[" in units.text:  # lines that had citations count again without them
        segmented = not units.profile.english_tokenizer
        for i, line in zip(rows, kept, strict=True):
            if "[" in units.lines[i]:
                kept_tokens += len(tokenize(line, segmented)) - token_counts[i]
    return counts, TextUnits("\n".join(kept).strip(), units.profile, n_tokens=kept_tokens)


def _line_rules(units: TextUnits, cfg: C4Config, counts: dict[str, int]) -> tuple[list[int], list[str]]:
    """Too long a word, no terminal punctuation, too few words: the indices of the lines left, and their
    text (stripped, without citations)."""
    lines = units.lines
    max_word = cfg.max_word_length
    rows: Sequence[int] = range(len(lines))
    # a word longer than max_word needs a line longer than it (strip() only shortens the line)
    if max_word is not None and lines and max(map(len, lines)) > max_word:
        rows = [
            i for i in rows if len(lines[i]) <= max_word or all(len(w) <= max_word for w in lines[i].split())
        ]
        counts["c4_long_word_lines"] = len(lines) - len(rows)
    cites = cfg.remove_citations and "[" in units.text

    def cleaned(line: str) -> str:
        return CITATION.sub("", line) if cites and "[" in line else line

    if cfg.terminal_punct:
        before = len(rows)
        rows = [i for i in rows if _ends_sentence(cleaned(lines[i].strip()))]
        counts["c4_no_terminal_punct_lines"] = before - len(rows)
    if cfg.min_words_per_line is not None:  # words of the line as written: before its citations go
        before = len(rows)
        enough = map(cfg.min_words_per_line.__le__, map(units.line_word_counts.__getitem__, rows))
        rows = list(compress(rows, enough))
        counts["c4_few_words_lines"] = before - len(rows)
    kept = list(map(str.strip, map(lines.__getitem__, rows)))
    return list(rows), list(map(cleaned, kept)) if cites else kept


def _phrase_rules(
    text: str, rows: list[int], kept: list[str], cfg: C4Config, counts: dict[str, int]
) -> tuple[list[int], list[str]]:
    """Lorem ipsum, javascript, '{' and policy lines among the kept lines, in C4's order."""
    # A line's lowered text is part of the document's, so a phrase absent from the whole document is
    # absent from every line, unless removing a citation joins two pieces of one.
    cites = cfg.remove_citations and "[" in text
    anywhere = text.lower() if not cites else ""
    lorem = cites or "lorem ipsum" in anywhere
    javascript = cfg.javascript and (cites or "javascript" in anywhere)
    policy = cfg.policy and (cites or any(phrase in anywhere for phrase in POLICY_SUBSTRINGS))
    if not (lorem or javascript or policy or "{" in text):
        return rows, kept
    # No phrase holds a line break: each is found in the kept lines joined, then mapped to its line.
    lowered = "\n".join(kept).lower()
    starts = list(accumulate(map((1).__add__, map(len, lowered.split("\n"))), initial=0))

    def lines_with(*phrases: str) -> Iterator[int]:
        for phrase in phrases:
            at = lowered.find(phrase)
            while at >= 0:
                yield bisect_right(starts, at) - 1
                at = lowered.find(phrase, at + 1)

    if lorem and "lorem ipsum" in lowered:
        counts["c4_lorem_ipsum"] = 1
    dropped = set(lines_with("javascript")) if javascript else set()
    counts["c4_javascript_lines"] = len(dropped)
    if any(line not in dropped for line in lines_with("{")):
        counts["c4_curly_bracket"] = 1
    if policy:
        policy_lines = set(lines_with(*POLICY_SUBSTRINGS)) - dropped
        counts["c4_policy_lines"] = len(policy_lines)
        dropped |= policy_lines
    if not dropped:
        return rows, kept
    keep = [i not in dropped for i in range(len(kept))]
    return list(compress(rows, keep)), list(compress(kept, keep))


def reason(s: dict[str, int], cfg: C4Config) -> str | None:
    if cfg.lorem_ipsum and s["c4_lorem_ipsum"]:
        return "c4_lorem_ipsum"
    if cfg.curly_bracket and s["c4_curly_bracket"]:
        return "c4_curly_bracket"
    if cfg.min_sentences is not None and s["c4_sentences"] < cfg.min_sentences:
        return "c4_too_few_sentences"
    return None

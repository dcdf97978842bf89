"""C4's heuristic rules (Raffel et al. 2020; tensorflow_datasets c4_utils), as datatrove 0.10.1 applies
them (c4_filters.C4QualityFilter): line rules drop lines, document rules reject the page.

Sentences are counted with a punctuation regex instead of NLTK's punkt (datatrove's per-line
``split_into_sentences``): the same boundaries except after abbreviations such as "Dr.", at a fraction of
the cost. The document's text is not rewritten (the number of lines each line rule drops is annotated
instead), but FineWeb's rules judge the lines C4 keeps, as in datatrove's FineWeb pipeline.
"""

from __future__ import annotations

import re

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
_POLICY = re.compile("|".join(map(re.escape, POLICY_SUBSTRINGS)))
# A sentence ends at terminal punctuation (plus closing quotes/brackets) followed by space, or at CJK
# full-width terminal punctuation followed by more text; never across a line break.
_SENTENCE_BREAK = re.compile(r"[.!?…]+[\"'”’»)\]]*[^\S\n]+(?=\S)|[。！？]+(?=\S)")

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


def count_sentences(lines: list[str]) -> int:
    """Sentences in these lines (each non-empty line holds at least one), in one regex pass."""
    return len(_SENTENCE_BREAK.findall("\n".join(lines))) + sum(1 for line in lines if line)


def signals(units: TextUnits, cfg: C4Config) -> tuple[dict[str, int], TextUnits]:
    """Walk the lines as C4 does; lorem ipsum and '{' only count on lines that survive the line rules
    before them (C4's order). Also returns the units of the text C4 keeps, which FineWeb judges next."""
    counts = dict.fromkeys(ANNOTATIONS, 0)
    kept: list[str] = []
    kept_tokens = 0
    min_words = cfg.min_words_per_line
    max_word = cfg.max_word_length
    segmented = not units.profile.english_tokenizer
    # A line's lowered text is part of the document's, so a phrase absent from the whole document is
    # absent from every line, unless removing a citation joins two pieces of one.
    text = units.text
    anywhere = text.lower() if "[" not in text or not cfg.remove_citations else None
    lorem = anywhere is None or "lorem ipsum" in anywhere
    javascript = cfg.javascript and (anywhere is None or "javascript" in anywhere)
    policy = cfg.policy and (anywhere is None or _POLICY.search(anywhere) is not None)
    lowered_needed = lorem or javascript or policy
    for index, raw in enumerate(units.lines):
        line = raw.strip()
        if max_word is not None and len(line) > max_word and any(len(w) > max_word for w in line.split()):
            counts["c4_long_word_lines"] += 1
            continue
        cited = cfg.remove_citations and "[" in line
        if cited:
            line = CITATION.sub("", line)
        if cfg.terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
            counts["c4_no_terminal_punct_lines"] += 1
            continue
        if min_words is not None and units.count_words(index) < min_words:  # words before citations go
            counts["c4_few_words_lines"] += 1
            continue
        lowered = line.lower() if lowered_needed else ""
        if lorem and "lorem ipsum" in lowered:
            counts["c4_lorem_ipsum"] = 1
        if javascript and "javascript" in lowered:
            counts["c4_javascript_lines"] += 1
            continue
        if "{" in line:
            counts["c4_curly_bracket"] = 1
        if policy and _POLICY.search(lowered):
            counts["c4_policy_lines"] += 1
            continue
        kept.append(line)
        kept_tokens += len(tokenize(line, segmented)) if cited else units.line_token_counts[index]
    counts["c4_sentences"] = count_sentences(kept)
    return counts, TextUnits("\n".join(kept).strip(), units.profile, n_tokens=kept_tokens)


def reason(s: dict[str, int], cfg: C4Config) -> str | None:
    if cfg.lorem_ipsum and s["c4_lorem_ipsum"]:
        return "c4_lorem_ipsum"
    if cfg.curly_bracket and s["c4_curly_bracket"]:
        return "c4_curly_bracket"
    if cfg.min_sentences is not None and s["c4_sentences"] < cfg.min_sentences:
        return "c4_too_few_sentences"
    return None

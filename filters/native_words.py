"""The Rust splitter (native/, the `curate_native` extension that `make setup` builds): spacy_words.py's
algorithm over spacy_words.py's own lists, so that one document's tokens, words and per-line counts come
back from one call instead of one cached Python call per whitespace chunk.

The extension holds no list or character class of its own: it is built here from the pure-Python
splitter's data, and the class of every character (letter, lower/upper case, symbol, digit, space, ...)
is the one Python's `str` methods and the `regex`/`re` patterns of the pure-Python rules give it. Without
the extension (or with CURATE_NATIVE=0) `splitter()` is None and text_units.py splits in Python, with
identical output (tests/filters/test_native_words.py checks both on the bench crawl).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import regex

from curate.filters import spacy_words as rules

try:
    import curate_native
except ImportError:  # not built here (no Rust toolchain at setup): text_units.py splits in Python
    curate_native = None

# One bit each, in the order the extension reads them (native/src/lib.rs). A class is a `str` method or
# the pattern the pure-Python rules use for it.
_CLASSES: list[Callable[[str], bool] | re.Pattern[str] | regex.Pattern[str]] = [
    str.isalpha,  # is_plain
    str.isnumeric,  # is_plain
    regex.compile(rf"[{rules._ALPHA}]", regex.V1),  # infixes' letters
    regex.compile(rf"[{rules._LOWER}]", regex.V1),
    regex.compile(rf"[{rules._UPPER}]", regex.V1),
    regex.compile(rules._ICONS[0], regex.V1),  # symbols: prefix, suffix and infix
    None,  # a word with a letter: text_units' pattern, given to `splitter`
    regex.compile(r"\w"),  # the URL pattern's scheme
    regex.compile(r"\d"),  # the URL pattern's IPv4 and port
    None,  # datatrove's punctuation: given to `splitter`
    str.isspace,  # str.split
]
_BMP = 0x10000


def _members(test: Any, chars: str) -> str:
    """The characters of `chars` in a class, in C-level loops (`findall`, `filter`)."""
    if isinstance(test, re.Pattern | regex.Pattern):
        return "".join(test.findall(chars))
    return "".join(filter(test, chars))


def _bmp_table(classes: list[Any]) -> bytes:
    table = np.zeros(_BMP, dtype="<u2")
    chars = "".join(map(chr, range(_BMP)))
    for bit, test in enumerate(classes):
        members = _members(test, chars).encode("utf-32-le", "surrogatepass")
        table[np.frombuffer(members, dtype="<u4")] |= 1 << bit
    return table.tobytes()


def enabled() -> bool:
    """The extension is built and not switched off (CURATE_NATIVE=0 splits in Python, for comparisons)."""
    return curate_native is not None and os.environ.get("CURATE_NATIVE", "1") != "0"


def ngram_chars() -> Callable[[list[str], Sequence[int], Sequence[int]], tuple[list[int], list[int]]] | None:
    """The extension's Gopher n-gram counts (`ngram_chars(tokens, top_ns, dup_ns)`), or None."""
    return curate_native.ngram_chars if enabled() else None


def splitter(has_letter: re.Pattern[str], punctuation: frozenset[str]) -> Any | None:
    """The extension's splitter for these rules, or None (not built, or CURATE_NATIVE=0)."""
    if not enabled():
        return None
    classes = list(_CLASSES)
    classes[6] = has_letter
    classes[9] = punctuation.__contains__

    def classes_of(code: int) -> int:
        char = chr(code)
        return sum(1 << bit for bit, test in enumerate(classes) if _members(test, char))

    return curate_native.Splitter(
        _bmp_table(classes),
        classes_of,
        rules._SPECIALS,
        rules._MERGEABLE,
        [*rules._PREFIX_MARKS, *rules._PUNCT, *rules._QUOTES, "…", *rules._CURRENCY],
        [*rules._PUNCT, *rules._QUOTES, "…", *rules._SUFFIX_MARKS],
        rules._CURRENCY,
        rules._UNITS,
        "".join(rules._QUOTES),
        "".join(c for c in rules._PUNCT if len(c) == 1),
        rules._HYPHENS,
        "".join(rules._INFIX_CHARS),
        rules._LONGEST_SUFFIX,
    )

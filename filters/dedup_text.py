"""Text normalisation, exact-duplicate keys and n-gram shingle hashes for dedup. Pure: no Beam, no I/O.

Both dedup stages see text through the same normalisation, so "the same page with different
capitalisation, spacing or page counters" is one page to both of them (FineWeb's and datatrove's
`simplify_text` do the same before shingling).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import xxhash

# Punctuation and symbols in any script (everything that is neither a word character nor whitespace).
_PUNCTUATION = re.compile(r"[^\w\s]|_")
_DIGITS = re.compile(r"\d")
# What remains of a text between punctuation and whitespace: runs of letters and digits.
_WORD = re.compile(r"[^\W_]+")

# Odd 64-bit multiplier (from splitmix64) for the polynomial that combines word hashes into n-gram hashes.
_NGRAM_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Normalization:
    """Which differences do not make two texts different (defaults: datatrove's simplify_text)."""

    lowercase: bool = True
    normalize_whitespace: bool = True
    strip_punctuation: bool = True
    normalize_digits: bool = True

    def apply(self, text: str) -> str:
        text = self.apply_keeping_lines(text)
        if self.normalize_whitespace:
            text = " ".join(text.split())  # str.split knows the same whitespace as re's \s, 4x faster
        return text

    def apply_keeping_lines(self, text: str) -> str:
        """``apply`` without the whitespace collapse: every newline stays where it was, so the lines of
        the result are the lines of the text, each normalised but for its whitespace."""
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        if self.strip_punctuation:
            text = _PUNCTUATION.sub(" ", text)
        if self.normalize_digits:
            text = _DIGITS.sub("0", text)
        return text

    def words(self, text: str) -> list[str]:
        """``apply(text).split()`` in one regex pass instead of three (the shingling hot path)."""
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        words = _WORD.findall(text) if self.strip_punctuation else text.split()
        if self.normalize_digits:
            words = [word if word.isalpha() else _DIGITS.sub("0", word) for word in words]
        return words


def exact_key(text: str, normalization: Normalization) -> str:
    """128-bit hash of the normalised text: equal keys mean equal texts up to the normalisation."""
    return xxhash.xxh3_128_hexdigest(normalization.apply(text).encode("utf-8", errors="surrogatepass"))


def _combine_ngrams(unit_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash every window of ``n`` consecutive unit hashes with a polynomial in uint64 arithmetic.

    Texts shorter than ``n`` units become one shingle of all their units, so short pages still compare.
    """
    if len(unit_hashes) == 0:
        return np.empty(0, dtype=np.uint32)
    n = min(n, len(unit_hashes))
    count = len(unit_hashes) - n + 1
    with np.errstate(over="ignore"):
        combined = unit_hashes[:count].copy()
        for offset in range(1, n):
            combined = combined * _NGRAM_MULTIPLIER + unit_hashes[offset : offset + count]
    # Keep the high half: the best-mixed bits of a multiplicative hash. MinHash works on 32-bit values.
    return np.unique((combined >> np.uint64(32)).astype(np.uint32))


def word_hashes(words: list[str]) -> np.ndarray:
    """A 64-bit hash per word (each distinct word hashed once), in order."""
    vocabulary: dict[str, int] = {}
    indices = [vocabulary.setdefault(word, len(vocabulary)) for word in words]
    hashes = np.fromiter(
        (xxhash.xxh3_64_intdigest(word.encode("utf-8", errors="surrogatepass")) for word in vocabulary),
        dtype=np.uint64,
        count=len(vocabulary),
    )
    return hashes[np.asarray(indices, dtype=np.int64)]


def ngram_positions(words: list[str], n: int) -> np.ndarray:
    """The full 64-bit hash of the word n-gram starting at each position (``len(words) - n + 1`` of them;
    none for texts shorter than ``n``). Same polynomial as the shingles; exact lookups (decontamination)
    need all 64 bits, where MinHash keeps 32."""
    if len(words) < n:
        return np.empty(0, dtype=np.uint64)
    unit_hashes = word_hashes(words)
    count = len(words) - n + 1
    with np.errstate(over="ignore"):
        combined = unit_hashes[:count].copy()
        for offset in range(1, n):
            combined = combined * _NGRAM_MULTIPLIER + unit_hashes[offset : offset + count]
    return combined


def shingle_hashes(text: str | list[str], n: int = 5, unit: str = "word") -> np.ndarray:
    """Distinct 32-bit hashes of the text's n-gram shingles (of words or of characters), sorted.

    ``text`` should already be normalised (or be its words, from ``Normalization.words``). Word hashes
    are computed once per distinct word and n-grams are combined in numpy, so the Python work is one
    dict lookup per word.
    """
    if unit == "word":
        return _combine_ngrams(word_hashes(text.split() if isinstance(text, str) else text), n)
    if unit == "char":
        text = text if isinstance(text, str) else " ".join(text)
        codepoints = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
        with np.errstate(over="ignore"):
            unit_hashes = (codepoints.astype(np.uint64) + np.uint64(1)) * _NGRAM_MULTIPLIER
        return _combine_ngrams(unit_hashes, n)
    raise ValueError(f"shingle unit must be 'word' or 'char', got {unit!r}")


def shingle_set(text: str, n: int = 5) -> set[tuple[str, ...]]:
    """The exact set of word n-grams (for measuring true Jaccard in tests and benchmarks)."""
    words = text.split()
    n = min(n, len(words))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)} if words else set()


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity of two sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)

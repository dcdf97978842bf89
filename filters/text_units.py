"""Lines, paragraphs and words of one document, computed once and shared by every quality rule.

Gopher, C4 and FineWeb rules all look at the same units; computing them once per document (and in C:
``str.split``, one regex ``findall``, ``Counter``) is what makes the rules cheap. Words are split per
language: scripts written without spaces (Chinese, Japanese, Thai, ...) count one word per character, so
such documents are not rejected as "too few words" just because they contain no spaces.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import chain
from operator import itemgetter, methodcaller
from typing import NamedTuple

from curate.filters import native_words
from curate.filters.spacy_words import is_plain, split_chunk

# Scripts written without spaces between words (Thai, Lao, Tibetan, Myanmar, Khmer, kana, CJK ideographs):
# one token per character plus its combining marks. Explicit ranges keep this on the stdlib `re` engine,
# about twice as fast as `regex`'s script properties.
SEGMENTED_SCRIPTS = (
    "\u0e00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30fa\u30fc-\u30ff\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_KATAKANA = "\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f"  # a run of it is one (loan)word
# Combining marks inside words (`re`'s \w leaves them out): Latin/Cyrillic/Hebrew/Arabic diacritics and the
# Indic blocks (vowel signs), less the danda punctuation.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0963\u0966-\u0dff\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
)
# Vowel signs and tone marks of the segmented Southeast Asian scripts stay with their base character.
_SEGMENTED_MARKS = (
    "\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u0eb1\u0eb4-\u0ebc\u0ec8-\u0ecd\u0f71-\u0f84\u102b-\u103e"
    "\u1056-\u1059\u17b4-\u17d3"
)
_WORD = rf"(?:[^\W{SEGMENTED_SCRIPTS}][{_MARKS}]*)+"
# One pass yields every token; the group holds words (URLs and numbers like 3.5 or 1,000 whole, as
# spaCy's tokenizer keeps them; apostrophes and dots inside a word keep it whole (don't, sources.list) and
# a leading slash stays on it (/etc), as in spaCy; a katakana run whole; other
# segmented-script characters one by one) and is empty for punctuation/symbol tokens, which datatrove's
# tokenizers emit and some Gopher/FineWeb ratios divide by. As in spaCy, "...", operator runs ("->",
# "--", "==") and "()" are one token each. On technical pages (the benchmark corpus) this keeps the share
# of alphabetic tokens within 0.01 of datatrove's (spaCy) on average, instead of 0.03 below it.
_TOKENS = re.compile(
    rf"(https?://\S+|www\.\S+|\d+(?:[.,:/]\d+)+|/?{_WORD}(?:[.'’]{_WORD})*|[{_KATAKANA}]+"
    rf"|[{SEGMENTED_SCRIPTS}][{_MARKS}{_SEGMENTED_MARKS}]*)|\.\.\.|[-=<>+*/|&~^%:]{{2,}}|\(\)|\[\]|[^\s\w{_MARKS}]"
)
_HAS_SEGMENTED = re.compile(rf"[{SEGMENTED_SCRIPTS}]")
_HAS_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class LanguageProfile:
    """What the rules need to know about a language."""

    code: str
    stop_words: frozenset[str]
    #: False where Gopher's 3-10 mean word length does not describe the language (one-character words in
    #: Chinese/Japanese/Thai; short Korean eojeol): the length is still annotated, never used to reject.
    checks_word_length: bool = True
    #: stop words are matched as substrings (Thai: words are not delimited, tokens are characters)
    substring_stop_words: bool = False
    #: every line is split as spaCy's English tokenizer splits it, a run of CJK characters included, and
    #: C4 counts a line's words with ``str.split``: what datatrove's English filters (FineWeb's) do with
    #: the mixed Chinese-English pages that its language ID calls English
    english_tokenizer: bool = False


# Gopher's English stop words (Rae et al. 2021, sec. A.1.1; datatrove gopher_quality_filter.STOP_WORDS).
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")

# Other languages: the most frequent function words of each (curate's lists, in Gopher's spirit: words
# any real running text contains at least two of). Covers the languages lid.176 reports most on the
# sample crawls and the benchmark corpus.
_STOP_WORDS: dict[str, str] = {
    "en": " ".join(GOPHER_STOP_WORDS),
    "de": "der die und in den von zu das mit ist nicht sich",
    "fr": "le la de et les des est un une en du que",
    "es": "de la que el en y los del se las por un",
    "it": "di e il la che in un per non del è una",
    "pt": "de a o que e do da em um para é com",
    "nl": "de het een en van in is dat op te niet",
    "ca": "de la el i que a en les per amb és",
    "ru": "и в не на что с по как это он к",
    "uk": "і в на що з не та до це у й",
    "bg": "и на в да се за от е с не",
    "pl": "i w z na się nie do to że jest",
    "cs": "a se na v je že to s z do",
    "sk": "a sa na v je že to s z do",
    "sv": "och i att det som en på är av för",
    "da": "og i at det er en til på som de",
    "no": "og i er det på til en som at for",
    "nb": "og i er det på til en som at for",
    "fi": "ja on ei se että oli hän mutta myös kun",
    "tr": "ve bir bu da de için ile çok ne gibi",
    "hu": "a az és hogy nem is egy van meg de",
    "ro": "și de în la a cu pe nu care o este",
    "el": "και το να η του της σε με που τα",
    "ar": "في من على و أن إلى عن مع هذا التي",
    "fa": "و در به از که این را با است برای",
    "he": "של את על לא זה עם הוא כי גם אם",
    "hi": "के है में की और से का को पर यह",
    "vi": "của và là có các không được cho một những",
    "id": "yang dan di ini itu dengan untuk dari dalam tidak",
    "ms": "yang dan di ini itu dengan untuk dari dalam tidak",
    "ko": "수 것 및 등 더 그 이 또는 있는 할",
    "ja": "の に は を た が で て と し",
    "zh": "的 是 了 在 和 有 不 这 我 一",
    "th": "ที่ และ ใน การ เป็น ของ มี ได้ ไม่ จะ",
}
_NO_WORD_LENGTH = {"zh", "ja", "th", "lo", "km", "my", "bo", "ko", "wuu", "yue"}
_SUBSTRING_STOP_WORDS = {"th", "lo", "km", "my"}

PROFILES: dict[str, LanguageProfile] = {
    code: LanguageProfile(
        code,
        frozenset(words.split()),
        checks_word_length=code not in _NO_WORD_LENGTH,
        substring_stop_words=code in _SUBSTRING_STOP_WORDS,
        english_tokenizer=code == "en",
    )
    for code, words in _STOP_WORDS.items()
}
# No language known (langid off) or one without a list: any language's stop words count, and the word
# length rule only applies to text without segmented scripts (decided per document, see TextUnits).
FALLBACK = LanguageProfile("*", frozenset().union(*(p.stop_words for p in PROFILES.values())))


def profile_for(lang: str | None, overrides: Mapping[str, Sequence[str]] | None = None) -> LanguageProfile:
    """The profile for an ISO code from langid (``None`` or unknown: the language-agnostic fallback)."""
    base = PROFILES.get(lang or "", FALLBACK)
    if overrides and lang is not None and lang in overrides:
        return LanguageProfile(
            base.code,
            frozenset(overrides[lang]),
            base.checks_word_length,
            base.substring_stop_words,
            base.english_tokenizer,
        )
    return base


def duplicates(items: Sequence[str]) -> tuple[int, int]:
    """(repeated elements, their characters): every occurrence after the first counts (Gopher)."""
    counts = Counter(items)
    repeated = [(item, n - 1) for item, n in counts.items() if n > 1]
    return sum(n for _, n in repeated), sum(len(item) * n for item, n in repeated)


class TextUnits:
    """One document's units; each is computed on first use, then shared by all rules.

    Text split as spaCy's English tokenizer splits it (every language but those with a segmented script)
    is split in one pass over the whole document: ``str.split`` never joins two lines (every line break of
    ``str.splitlines`` is whitespace to it), so the document's chunks are its lines' chunks in order, and
    each chunk's tokens come from a bounded per-process cache (`_chunk_units`) in C-level ``map`` calls.
    Per-line counts (C4) come from the same chunks with one ``str.split`` per line."""

    def __init__(self, text: str, profile: LanguageProfile = FALLBACK, n_tokens: int | None = None):
        self.text = text
        self.profile = profile
        self._n_tokens = n_tokens  # known already when the text was cut from tokenized lines

    @cached_property
    def lines(self) -> list[str]:
        """``str.splitlines`` (Gopher quality, C4)."""
        return self.text.splitlines()

    @cached_property
    def newline_lines(self) -> list[str]:
        """Lines split on ``\\n`` only, blank ones dropped (FineWeb; Gopher repetition's ``\\n+``)."""
        return list(filter(str.strip, self.text.split("\n")))

    @cached_property
    def paragraphs(self) -> list[str]:
        # `\n{2,}` split with str.split: a run of 2k (2k+1) newlines leaves k-1 empty pieces (and a
        # newline heading the next piece); the stripped text neither starts nor ends with a newline
        pieces = self.text.strip().split("\n\n")
        return [piece[1:] if piece[0] == "\n" else piece for piece in pieces if piece] or [""]

    @cached_property
    def _per_line(self) -> bool:
        """Lines are split one by one only where a line may hold a segmented script split per character."""
        return not self.profile.english_tokenizer and self.has_segmented_script

    @cached_property
    def _split(self) -> DocumentTokens:
        return document_tokens(self.text)

    @cached_property
    def _line_parts(self) -> list[tuple[list[str], list[str]]]:
        return [split_line(line, True) for line in self.lines]

    @cached_property
    def line_token_counts(self) -> list[int]:
        """Tokens in each of `lines` (punctuation/symbol tokens included)."""
        if self._per_line:
            return [len(marked) for _, marked in self._line_parts]
        return self._split.line_counts

    @cached_property
    def _chunks_per_line(self) -> list[int]:
        if "_split" in self.__dict__:  # counted already, where the words were split
            return self._split.line_chunks
        return line_chunks(self.lines)

    @property
    def word_chars(self) -> int:
        """Characters of `words`."""
        if self._per_line:
            return sum(map(len, self.words))
        return self._split.word_chars

    @property
    def bullet_lines(self) -> int:
        """`lines` that start with a bullet once their whitespace is stripped (Gopher)."""
        if "_split" in self.__dict__:
            return self._split.bullet_lines
        return bullet_lines(self.lines)

    @property
    def ellipsis_lines(self) -> int:
        """`lines` that end with an ellipsis once their whitespace is stripped (Gopher)."""
        if "_split" in self.__dict__:
            return self._split.ellipsis_lines
        return ellipsis_lines(self.lines)

    @cached_property
    def line_tokens(self) -> list[list[str]]:
        """Tokens of each of `lines` ("" for a punctuation/symbol token); no token spans a line break."""
        if self._per_line:
            return [marked for _, marked in self._line_parts]
        return [list(tokenize(line, False)) for line in self.lines]

    @cached_property
    def tokens(self) -> list[str]:
        """Every token with its text, punctuation included (what Gopher's n-gram rules count in datatrove)."""
        if self._per_line:
            return list(chain.from_iterable(texts for texts, _ in self._line_parts))
        return self._split.tokens

    @cached_property
    def words(self) -> list[str]:
        """Word tokens (segmented scripts: one per character), punctuation excluded."""
        if self._per_line:
            return list(filter(None, chain.from_iterable(self.line_tokens)))
        return self._split.words

    @property
    def n_tokens(self) -> int:
        """Words plus punctuation/symbol tokens."""
        if self._n_tokens is not None:
            return self._n_tokens
        if self._per_line:
            return sum(map(len, self.line_tokens))
        return len(self._split.tokens)

    @cached_property
    def has_segmented_script(self) -> bool:
        return _HAS_SEGMENTED.search(self.text) is not None

    @property
    def checks_word_length(self) -> bool:
        if self.profile is FALLBACK:
            return not self.has_segmented_script
        return self.profile.checks_word_length

    @cached_property
    def n_alpha_words(self) -> int:
        if self._per_line:
            return len(list(filter(_HAS_LETTER.search, self.words)))
        return self._split.alpha_words

    @cached_property
    def n_stop_words(self) -> int:
        """Distinct stop words present (datatrove: ``len(stop_words & set(words))``)."""
        if self.profile.substring_stop_words:
            return sum(1 for word in self.profile.stop_words if word in self.text)
        return len(self.profile.stop_words.intersection(self.words))

    @cached_property
    def line_word_counts(self) -> list[int]:
        """`count_words` of each of `lines`."""
        if not self._per_line:
            return self._chunks_per_line
        return list(map(self.count_words, range(len(self.lines))))

    def count_words(self, index: int) -> int:
        """Words in line `index`: whitespace-separated, or per character in segmented scripts (C4)."""
        if not self._per_line:
            return self._chunks_per_line[index]
        line = self.lines[index]
        if _HAS_SEGMENTED.search(line):
            return sum(1 for token in self.line_tokens[index] if token)
        return len(line.split())


class ChunkUnits(NamedTuple):
    """One whitespace-free chunk's tokens, as `split_line` gives them, and how many are alphabetic words."""

    texts: tuple[str, ...]
    marked: tuple[str, ...]
    alpha_words: int


_TEXTS = itemgetter(0)
_MARKED = itemgetter(1)
_ALPHA_WORDS = itemgetter(2)


@lru_cache(maxsize=1 << 16)
def _chunk_units(chunk: str) -> ChunkUnits:
    """A chunk's units; cached, since most chunks of a text ("the", "it,") come back in the next one. The
    cache is bounded (about 20 MB) and its hits are C-level calls."""
    if is_plain(chunk):
        one = (chunk,)
        return ChunkUnits(one, one, 1 if _HAS_LETTER.search(chunk) else 0)
    texts, marked = _split_marked(chunk)
    return ChunkUnits(texts, marked, len(list(filter(_HAS_LETTER.search, filter(None, marked)))))


class DocumentTokens(NamedTuple):
    """A text's tokens as spaCy's English tokenizer splits it, and the per-line counts the rules take
    from the same pass."""

    tokens: list[str]  #: every token, punctuation/symbol tokens included
    words: list[str]  #: the tokens that are words
    line_counts: list[int]  #: tokens on each of ``str.splitlines()``'s lines
    alpha_words: int  #: words holding a letter
    line_chunks: list[int]  #: ``len(line.split())`` of each of those lines
    word_chars: int  #: characters of the words
    bullet_lines: int  #: `bullet_lines` of those lines
    ellipsis_lines: int  #: `ellipsis_lines` of those lines


_IS_BULLET = methodcaller("startswith", ("•", "-"))
_ENDS_ELLIPSIS = methodcaller("endswith", ("...", "…"))


def line_chunks(lines: Sequence[str]) -> list[int]:
    """``len(line.split())`` of each line (what the Rust splitter counts in the same pass)."""
    return list(map(len, map(str.split, lines)))


def bullet_lines(lines: Sequence[str]) -> int:
    """Lines that start with a bullet ("•", "-") once their whitespace is stripped (Gopher)."""
    return sum(map(_IS_BULLET, map(str.lstrip, lines)))


def ellipsis_lines(lines: Sequence[str]) -> int:
    """Lines that end with an ellipsis ("...", "…") once their whitespace is stripped (Gopher)."""
    return sum(map(_ENDS_ELLIPSIS, map(str.rstrip, lines)))


def document_tokens(text: str) -> DocumentTokens:
    """`DocumentTokens` of a text: from the Rust splitter when it is built, else from the chunk cache."""
    if _NATIVE is not None:
        try:
            return DocumentTokens(*_NATIVE.document_units(text))
        except UnicodeEncodeError:  # a lone surrogate (from JSON input) has no UTF-8: split in Python
            pass
    chunks = list(map(_chunk_units, text.split()))
    marked = list(chain.from_iterable(map(_MARKED, chunks)))
    per_chunk = list(map(len, map(_MARKED, chunks)))
    lines = text.splitlines()
    chunks_per_line = line_chunks(lines)
    line_counts: list[int] = []
    start = 0
    for n_chunks in chunks_per_line:
        line_counts.append(sum(per_chunk[start : start + n_chunks]))
        start += n_chunks
    words = list(filter(None, marked))
    return DocumentTokens(
        list(chain.from_iterable(map(_TEXTS, chunks))),
        words,
        line_counts,
        sum(map(_ALPHA_WORDS, chunks)),
        chunks_per_line,
        sum(map(len, words)),
        bullet_lines(lines),
        ellipsis_lines(lines),
    )


def split_line(text: str, segmented: bool = True) -> tuple[list[str], list[str]]:
    """Tokens of a text: their texts, and the same list with "" standing for each punctuation/symbol token.

    Text in scripts written with spaces is split as spaCy's English tokenizer splits it (what datatrove's
    Gopher filters count; filters/spacy_words.py); with `segmented`, a line holding a segmented script
    (CJK, Thai, ...) is split per character instead (spaCy would need a segmenter per language)."""
    if segmented and _HAS_SEGMENTED.search(text):
        found = list(_TOKENS.finditer(text))
        return [m.group(0) for m in found], [m.group(1) or "" for m in found]
    if _NATIVE is not None:
        try:
            return _NATIVE.split_marked(text)
        except UnicodeEncodeError:
            pass
    texts: list[str] = []
    marked: list[str] = []
    for chunk in text.split():
        if is_plain(chunk):
            texts.append(chunk)
            marked.append(chunk)
        else:
            chunk_texts, chunk_marked = _split_marked(chunk)
            texts += chunk_texts
            marked += chunk_marked
    return texts, marked


def tokenize(text: str, segmented: bool = True) -> list[str]:
    """All tokens of a text, "" standing for each punctuation/symbol token."""
    return split_line(text, segmented)[1]


@lru_cache(maxsize=1 << 16)
def _split_marked(chunk: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    texts = split_chunk(chunk)
    return texts, tuple(token if _is_word(token) else "" for token in texts)


# datatrove 0.10.1's utils/text.py PUNCTUATION_SET: a token made only of these is a symbol, not a word, for
# Gopher's mean word length (ASCII punctuation, C0/C1 controls but tab and newline, and these).
_DATATROVE_PUNCTUATION = frozenset(
    string.punctuation
    + "".join(map(chr, [*range(0, 9), *range(11, 32), *range(127, 160)]))
    + (
        "«´»։؝؞؟۔܀܁܂߹࠷࠹࠽࠾।॥၊။።፧፨᙮᜵᜶។៕៖៙៚᠃᠉᥄᥅᪨᪩᪪᪫᭚᭛᭞᭟᭽᭾᰻᰼᱾᱿–—’“”„…‼‽⁇⁈⁉∶━►⸮⸼⹓⹔、。〈〉《》「」【】꓿꘎꘏꛳꛷꡶꡷꣎꣏꤯꧈꧉"
        "꩝꩞꩟꫰꫱꯫﹒﹖﹗！％（），．１：；？～｡𐩖𐩗𐽕𐽖𐽗𐽘𐽙𐾆𐾇𐾈𐾉𑁇𑁈𑂾𑂿𑃀𑃁𑅁𑅂𑅃𑇅𑇆𑇍𑇞𑇟𑈸𑈹𑈻𑈼𑊩𑑋𑑌𑗂𑗃𑗉𑗊𑗋𑗌𑗍𑗎𑗏𑗐𑗑𑗒𑗓𑗔𑗕𑗖𑗗𑙁𑙂𑜼𑜽𑜾𑥄𑥆𑩂𑩃𑪛𑪜𑱁𑱂𑻷𑻸"
        "\U00011f43\U00011f44𖩮𖩯𖫵𖬷𖬸𖭄𖺘𛲟𝪈"
    )
)


def _is_word(token: str) -> bool:
    return not _DATATROVE_PUNCTUATION.issuperset(token)


# The Rust splitter over the same rules (filters/native_words.py), or None: then the chunk cache splits.
_NATIVE = native_words.splitter(_HAS_LETTER, _DATATROVE_PUNCTUATION)

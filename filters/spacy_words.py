"""Word splitting as spaCy's English tokenizer does it (what datatrove's Gopher filter counts), in pure
Python: so curate's Gopher ratios are datatrove's on code- and number-dense text too.

spaCy splits on whitespace, then peels prefixes (opening punctuation, quotes, currency) and suffixes
(closing punctuation, "'s", units after a number, a period after a lower-case letter or a number) off each
chunk, and splits what is left only at a few infixes (a hyphen, "/", ":", "<", ">" or "=" between letters,
"," between letters, "." between a lower- and an upper-case letter, an operator between digits). Anything
else stays attached: "-t", "sizeof(struct", "lrugen->folios", "Device¶" are one token each. Chunks that
look like URLs or host names (slabinfo-gnuplot.sh) stay whole, and special cases are kept or split as
spaCy's exceptions say ("e.g." and emoticons whole; "don't" -> "do", "n't"; "cannot" -> "can", "not").

The rules and lists are spaCy 3.8's (spacy/lang/punctuation.py, char_classes.py, tokenizer_exceptions.py
and lang/en/tokenizer_exceptions.py, MIT licence), rewritten here; the exception list is the part that
changes word counts (contractions, abbreviations, emoticons), not spaCy's full table. Checked against
spaCy itself in bench/fineweb_agreement.py. Most chunks are plain words or numbers and take a fast path.
"""

from __future__ import annotations

from functools import lru_cache

import regex

# Whitespace-separated lists, as spaCy writes them (split_chars / .split()).
_PUNCT = "… …… , : ; ! ? ¿ ؟ ¡ ( ) [ ] { } < > _ # * & 。 ？ ！ ， 、 ； ： ～ · । ، ۔ ؛ ٪".split()  # noqa: SIM905
_ELLIPSES = [r"\.\.+", "…"]
_QUOTES = "' \" ” “ ` ‘ ´ ’ ‚ , „ » « 「 」 『 』 （ ） 〔 〕 【 】 《 》 〈 〉 〈 〉 ⟦ ⟧".split()  # noqa: SIM905
_CURRENCY = (
    "$ £ € ¥ ฿ US$ C$ A$ ₽ ﷼ ₴ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ ₭ ₮ ₯ ₰ ₱ ₲ ₳ ₵ ₶ ₷ ₸ ₹ ₺ ₻ ₼ ₾ ₿".split()  # noqa: SIM905
)
_ICONS = [r"\p{So}"]  # other symbols; spaCy 3.8's explicit list includes the degree sign: 1°C -> 1 ° C
_HYPHENS = "- – — -- --- —— ~".split()  # noqa: SIM905
_UNITS = (  # noqa: SIM905
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s km/h "
    "kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см см² см³ мм мм² "
    "мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тб"
).split()

# spaCy's ALPHA_LOWER/ALPHA_UPPER include the scripts without case (Hangul, Arabic, CJK, ...)
_ALPHA, _LOWER, _UPPER = r"\p{L}", r"\p{Ll}\p{Lo}", r"\p{Lu}\p{Lo}"
_PUNCT_CLASS = "".join(regex.escape(c) for c in _PUNCT if len(c) == 1)
_QUOTE_CLASS = "".join(regex.escape(c) for c in _QUOTES)
_escaped = [regex.escape(item) for item in _PUNCT + _QUOTES]

_PREFIX_MARKS = ["§", "%", "=", "—", "–"]  # noqa: RUF001
_SUFFIX_MARKS = ["'s", "'S", "’s", "’S", "—", "–"]  # noqa: RUF001
_PREFIXES = [*_PREFIX_MARKS, r"\+(?![0-9])", *_escaped, *_ELLIPSES]
_PREFIXES += [regex.escape(c) for c in _CURRENCY] + _ICONS
_SUFFIXES = [*_escaped, *_ELLIPSES, *_ICONS, *_SUFFIX_MARKS]
_SUFFIXES += [
    r"(?<=[0-9])\+",
    r"(?<=°[FfCcKk])\.",
    r"(?<=[0-9])(?:" + "|".join(regex.escape(c) for c in _CURRENCY) + ")",
    r"(?<=[0-9])(?:" + "|".join(regex.escape(u) for u in _UNITS) + ")",
    rf"(?<=[0-9{_LOWER}%²\-\+{_QUOTE_CLASS}{_PUNCT_CLASS}])\.",
    rf"(?<=[{_UPPER}][{_UPPER}])\.",
]
_INFIXES = [
    *_ELLIPSES,
    *_ICONS,
    r"(?<=[0-9])[+\-\*^](?=[0-9-])",
    rf"(?<=[{_LOWER}{_QUOTE_CLASS}])\.(?=[{_UPPER}{_QUOTE_CLASS}])",
    rf"(?<=[{_ALPHA}]),(?=[{_ALPHA}])",
    rf"(?<=[{_ALPHA}0-9])(?:" + "|".join(regex.escape(h) for h in _HYPHENS) + rf")(?=[{_ALPHA}])",
    rf"(?<=[{_ALPHA}0-9])[:<>=/](?=[{_ALPHA}])",
]
_PREFIX = regex.compile("^(?:" + "|".join(f"(?:{p})" for p in _PREFIXES) + ")", regex.V1)
_SUFFIX = regex.compile("(?:" + "|".join(f"(?:{s})" for s in _SUFFIXES) + ")$", regex.V1)
_INFIX = regex.compile("|".join(f"(?:{i})" for i in _INFIXES), regex.V1)
# spaCy's URL_MATCH (spacy/lang/tokenizer_exceptions.py): scheme, user, IPv4 or host names with a
# lower-case TLD of 2+ letters, port, path.
_URL = regex.compile(
    r"^(?:(?:[\w\+\-\.]{2,})://)?(?:\S+(?::\S*)?@)?(?:"
    r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
    r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
    r"|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?[A-Za-z0-9\u00a1-\uffff]\.)+"
    r"(?:[a-z\u00a1-\uffff]{2,63}\.?))(?::\d{2,5})?(?:[/?#]\S*)?$"
)


def _special_cases() -> dict[str, list[str]]:
    """spaCy's English exceptions that change how many tokens a chunk is."""
    specials: dict[str, list[str]] = {}
    verbs = "is are was were do does did have has had could would should might must need ca wo sha ai dare"
    pronouns = "i you he she it we they there that this who what where when why how here let"
    for apostrophe in ("'", "’"):  # noqa: RUF001
        for verb in verbs.split():
            for form in {verb, verb.capitalize()}:
                specials[f"{form}n{apostrophe}t"] = [form, f"n{apostrophe}t"]
            specials[f"{verb.upper()}N{apostrophe}T"] = [verb.upper(), f"N{apostrophe}T"]
        for pronoun in pronouns.split():
            for form in {pronoun, pronoun.capitalize()}:
                for clitic in ("m", "re", "ll", "ve", "d", "s"):
                    specials[f"{form}{apostrophe}{clitic}"] = [form, f"{apostrophe}{clitic}"]
        for clitic in ("s", "S", "d", "ll", "re", "ve", "m"):
            specials[f"{apostrophe}{clitic}"] = [f"{apostrophe}{clitic}"]
    for form in ("cannot", "Cannot", "CANNOT"):
        specials[form] = [form[:3], form[3:]]
    for form, parts in {"id": ["i", "d"], "Id": ["I", "d"], "im": ["i", "m"], "Im": ["I", "m"]}.items():
        specials[form] = parts
    for verb in [
        "do",
        "does",
        "did",
        "is",
        "are",
        "was",
        "were",
        "have",
        "has",
        "had",
        "could",
        "would",
        "should",
        "ca",
    ]:
        specials[f"{verb}nt"] = [verb, "nt"]
    kept_whole = (
        "a.m. p.m. e.g. E.g. E.G. i.e. I.e. I.E. Mr. Mrs. Ms. Dr. St. Inc. Ltd. Co. co. Corp. Jr. Sr. "
        "vs. v.s. "
        "Ph.D. Prof. Rev. Sen. Rep. Gen. Gov. Adm. Bros. Messrs. Mt. D.C. Jan. Feb. Mar. Apr. Jun. Jul. "
        "Aug. Sep. Sept. Oct. Nov. Dec. C++ and/or n't N'T "
        r""":) :( ): (: :-) :-( )-: (-: ;) ;-) (; :D :P :p :O :o :0 =) (= =( )= :/ <3 </3 """
        r""":') :'( )': :] [: :[ """
        r""":| |: ;( ;] :3 8) (8 :> <: xD XD xd ^_^ ^__^ -_- o.O O.o o_O O_o :-P :-p :-D :-O :-/ :-| :-] """
        r""":-[ >:( >:o :* :-* =D =] =[ =| ._. -__- (^_^) (>_<) >.< <.< >.> ಠ_ಠ"""
    )
    for orth in kept_whole.split() + [f"{letter}." for letter in "abcdefghijklmnopqrstuvwxyzäöü"]:
        specials[orth] = [orth]
    return specials


_SPECIALS = _special_cases()
_SIMPLE = regex.compile(r"\p{L}+|\p{N}+")
_MERGEABLE = {orth for orth in _SPECIALS if not _SIMPLE.fullmatch(orth)}


def _peel(chunk: str) -> tuple[list[str], str, list[str]]:
    """spaCy's _split_affixes: prefixes and suffixes off one chunk until a special case or no change."""
    prefixes: list[str] = []
    suffixes: list[str] = []
    last = -1
    while chunk and len(chunk) != last and chunk not in _SPECIALS:
        last = len(chunk)
        found = _PREFIX.search(chunk)
        pre = found.end() if found else 0
        if pre and chunk[pre:] in _SPECIALS:
            prefixes.append(chunk[:pre])
            return prefixes, chunk[pre:], suffixes
        found = _search_suffix(chunk, pre)
        suf = found.end() - found.start() if found else 0
        if suf and chunk[:-suf] in _SPECIALS:
            suffixes.append(chunk[-suf:])
            return prefixes, chunk[:-suf], suffixes
        if pre and suf and pre + suf <= len(chunk):
            prefixes.append(chunk[:pre])
            suffixes.append(chunk[-suf:])
            chunk = chunk[pre:-suf]
        elif pre:
            prefixes.append(chunk[:pre])
            chunk = chunk[pre:]
        elif suf:
            suffixes.append(chunk[-suf:])
            chunk = chunk[:-suf]
    return prefixes, chunk, suffixes


# No suffix but a run of dots (\.\.+) is longer than this: the longest are units ("mbar", "km/h").
_LONGEST_SUFFIX = 4
# Every infix but a symbol (\p{So}, never ASCII) contains one of these characters.
_INFIX_CHARS = frozenset(".…+-*^,–—~:<>=/")  # noqa: RUF001


def _search_suffix(chunk: str, start: int) -> regex.Match[str] | None:
    """`_SUFFIX.search(chunk, start)` looking only at the tail where a suffix can begin (the lookbehinds
    still see the characters before it): the leftmost match is the same, since only a run of dots can be
    longer than `_LONGEST_SUFFIX`, and a chunk ending in two dots is searched whole."""
    if not chunk.endswith(".."):
        start = max(start, len(chunk) - _LONGEST_SUFFIX)
    return _SUFFIX.search(chunk, start)


def _may_have_infix(core: str) -> bool:
    return not (core.isascii() and _INFIX_CHARS.isdisjoint(core))


@lru_cache(maxsize=1 << 16)
def _split_chunk(chunk: str) -> tuple[str, ...]:
    """The tokens of one whitespace-free chunk (cached: "the," and "(see" come back all the time)."""
    out: list[str] = []
    prefixes, core, suffixes = _peel(chunk)
    out += prefixes
    if core in _SPECIALS:
        out += _SPECIALS[core]
    elif "." in core and _URL.match(core):  # a host name or IP address has a dot
        out.append(core)
    elif core:
        begin = 0
        for found in _INFIX.finditer(core) if _may_have_infix(core) else ():
            if found.start() == 0:
                continue
            if found.start() != begin:
                out.append(core[begin : found.start()])
            if found.end() != found.start():
                out.append(found.group())
            begin = found.end()
        if core[begin:]:
            out.append(core[begin:])
    out += reversed(suffixes)
    if len(out) > 1:
        _merge_specials(out, 0)
    return tuple(out)


def _merge_specials(out: list[str], start: int) -> None:
    """spaCy re-joins tokens that spell a special case ("e.g.", an emoticon) after splitting."""
    i = start
    while i < len(out):
        for j in range(min(len(out), i + 4), i + 1, -1):
            joined = "".join(out[i:j])
            if joined in _MERGEABLE:
                out[i:j] = _SPECIALS[joined]
                break
        i += 1


def is_plain(chunk: str) -> bool:
    """A chunk spaCy leaves as it is: a plain word or number (most chunks), not a special case."""
    return (chunk.isalpha() or chunk.isnumeric()) and chunk not in _SPECIALS


def split_chunk(chunk: str) -> tuple[str, ...]:
    """The tokens of one whitespace-free chunk."""
    return (chunk,) if is_plain(chunk) else _split_chunk(chunk)


def spacy_words(text: str) -> list[str]:
    """Tokens of ``text`` as spaCy's English tokenizer (spacy.blank("en")) gives them, whitespace dropped."""
    out: list[str] = []
    for chunk in text.split():
        if is_plain(chunk):
            out.append(chunk)
        else:
            out += _split_chunk(chunk)
    return out

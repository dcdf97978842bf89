"""Toxicity: a trained classifier's probability, an optional fastText classifier, optional keyword lists.

The default classifier is alt-profanity-check's shipped model (a calibrated linear SVM over TF-IDF,
trained on human-labelled toxic and offensive comments): real, small, CPU-only and offline. A
Dolma/Jigsaw-style fastText classifier can be added by path; `toxicity` is the higher of the two
probabilities. Keyword lists (LDNOOBW, as C4 used them) count hits separately in `toxic_words`, so the
two signals can be re-tuned apart on the written annotations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import Field

from curate.core.config import Fixed, NamesPath, Signal, StageConfig
from curate.core.errors import CurateError
from curate.core.files import read_text
from curate.filters.base import Annotations, Doc, FilterSpec, FilterStageDef
from curate.filters.langid import load_fasttext, normalize_language, one_line
from curate.filters.text_units import SEGMENTED_SCRIPTS


class ToxicityConfig(StageConfig):
    enabled: bool = False
    threshold: float = Field(0.9, ge=0.0, le=1.0, description="Reject when toxicity >= threshold.")
    classifier: Literal["alt-profanity-check"] | None = Field(
        "alt-profanity-check", description="Trained classifier shipped on PyPI; null for none."
    )
    wordlists: Annotated[list[str] | dict[str, str | list[str]], NamesPath("file")] = Field(
        default_factory=list, description="Keyword files (e.g. LDNOOBW) for all docs, or {lang: files}."
    )
    word_min_hits: int = Field(1, ge=1, description="Keyword hits that reject a document (C4: any).")
    fasttext_model: Annotated[str | None, NamesPath("file")] = Field(
        None, description="Optional fastText toxicity classifier."
    )
    fasttext_label: str = Field("toxic", description="Its toxic label (Dolma's Jigsaw models: toxic).")


ANNOTATION_TYPES = {"toxicity": "float64", "toxic_words": "int32"}
REASON = "toxicity"

_WORD = re.compile(r"\w+")
# Scripts written without spaces between words (Han, kana, Thai, Lao, Tibetan, Myanmar, Khmer): their
# terms match as substrings. The same ranges as text_units' word splitting, so both agree on a script.
_UNSPACED = re.compile(f"[{SEGMENTED_SCRIPTS}]")


class ProfanityCheckClassifier:
    """alt-profanity-check's model and vectorizer, loaded from the installed package's data files."""

    def __init__(self) -> None:
        import joblib

        data = resources.files("profanity_check") / "data"
        self._vectorizer = joblib.load(data / "vectorizer.joblib")
        self._model = joblib.load(data / "model.joblib")

    def predict_proba(self, texts: Sequence[str]) -> list[float]:
        """P(toxic) for each text, in one vectorised call."""
        if not texts:
            return []
        return self._model.predict_proba(self._vectorizer.transform(texts))[:, 1].tolist()


class FastTextClassifier:
    """Probability of one label (e.g. Dolma's Jigsaw `__label__toxic`) from any fastText classifier."""

    def __init__(self, model: Any, label: str):
        self._model = model
        self._label = label if label.startswith("__label__") else f"__label__{label}"

    def predict_proba(self, texts: Sequence[str]) -> list[float]:
        out = []
        for text in texts:  # one predict call per text (as langid)
            labels, probs = self._model.predict(one_line(text), k=-1)
            scores = dict(zip(labels, probs, strict=True))
            out.append(min(1.0, float(scores.get(self._label, 0.0))))
        return out


class WordList:
    """Counts occurrences of listed terms, case-insensitively: whole words and multi-word phrases in
    spaced scripts (as C4's bad-words filter), substrings in scripts written without spaces."""

    def __init__(self, terms: Iterable[str]):
        self._phrases: set[str] = set()
        self._lengths: dict[str, set[int]] = {}  # first word -> word counts of phrases starting with it
        self._substrings: list[str] = []
        self._bounded: list[tuple[str, re.Pattern[str]]] = []
        for term in {" ".join(t.casefold().split()) for t in terms} - {""}:
            words = _WORD.findall(term)
            if _UNSPACED.search(term):
                self._substrings.append(term)
            elif " ".join(words) == term:
                self._phrases.add(term)
                self._lengths.setdefault(words[0], set()).add(len(words))
            else:  # punctuation inside the term ("a$$"): a regex with word boundaries
                self._bounded.append((term, re.compile(rf"(?<!\w){re.escape(term)}(?!\w)")))

    @classmethod
    def from_files(cls, paths: Iterable[str]) -> WordList:
        terms: list[str] = []
        for path in paths:
            try:
                terms += read_text(path).splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise CurateError(f"stages.toxicity.wordlists: cannot read {path} ({error})") from None
        return cls(terms)

    def count(self, text: str) -> int:
        text = text.casefold()
        words = _WORD.findall(text)
        hits = 0
        for i, word in enumerate(words):
            for n in self._lengths.get(word, ()):
                hits += n == 1 or " ".join(words[i : i + n]) in self._phrases
        if self._substrings and _UNSPACED.search(text):
            hits += sum(text.count(term) for term in self._substrings)
        for term, pattern in self._bounded:
            if term in text:  # a plain substring test first: the regex runs on few documents
                hits += len(pattern.findall(text))
        return hits


def load_wordlists(spec: list[str] | dict[str, str | list[str]]) -> dict[str | None, WordList]:
    """Files for every language (a list), or per language ({lang: file(s)}, codes as langid writes them)."""
    if isinstance(spec, list):
        return {None: WordList.from_files(spec)} if spec else {}
    return {
        normalize_language(lang): WordList.from_files([files] if isinstance(files, str) else files)
        for lang, files in spec.items()
    }


class ToxicityFilter:
    """Annotates `toxicity` (max classifier probability) and `toxic_words` (keyword hits with the list
    for the document's `lang`, or the list for all languages under key None); rejects at `threshold` or
    at `word_min_hits` keyword hits."""

    annotation_types = ANNOTATION_TYPES

    def __init__(
        self,
        classifiers: Sequence[Any],
        wordlists: Mapping[str | None, WordList] | None = None,
        threshold: float = 0.9,
        word_min_hits: int = 1,
    ):
        self._classifiers = list(classifiers)
        self._wordlists = dict(wordlists or {})
        self._threshold = threshold
        self._word_min_hits = word_min_hits

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        texts = [doc.get("text") or "" for doc in docs]
        scores: list[float | None] = [None] * len(texts)
        for classifier in self._classifiers:
            probs = classifier.predict_proba(texts)
            scores = [p if s is None else max(s, p) for s, p in zip(scores, probs, strict=True)]
        words = []
        for doc, text in zip(docs, texts, strict=True):
            wordlist = self._wordlists.get(doc.get("lang"), self._wordlists.get(None))
            words.append(None if wordlist is None else wordlist.count(text))
        return [{"toxicity": score, "toxic_words": hits} for score, hits in zip(scores, words, strict=True)]

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        score, hits = annotations.get("toxicity"), annotations.get("toxic_words")
        if score is not None and score >= self._threshold:
            return REASON
        if hits is not None and hits >= self._word_min_hits:
            return REASON
        return None


def make_filter(cfg: ToxicityConfig) -> ToxicityFilter:
    classifiers: list[Any] = []
    if cfg.classifier == "alt-profanity-check":
        classifiers.append(ProfanityCheckClassifier())
    if cfg.fasttext_model:
        model = load_fasttext(cfg.fasttext_model, "stages.toxicity.fasttext_model")
        classifiers.append(FastTextClassifier(model, cfg.fasttext_label))
    return ToxicityFilter(classifiers, load_wordlists(cfg.wordlists), cfg.threshold, cfg.word_min_hits)


def stage_spec(cfg: ToxicityConfig) -> FilterSpec:
    if cfg.classifier is None and not cfg.fasttext_model and not cfg.wordlists:
        raise CurateError(
            "stages.toxicity: classifier is null and no fasttext_model or wordlists are given; "
            "enable one of them or set stages.toxicity.enabled: false"
        )
    return FilterSpec(partial(make_filter, cfg))


STAGE = FilterStageDef(
    name="toxicity",
    config=ToxicityConfig,
    spec=stage_spec,
    annotations=Fixed(ANNOTATION_TYPES),
    signals=(Signal("toxicity", thresholds=("threshold",), model=True),),
)

"""KenLM perplexity, CCNet-style: normalise each line, score it, and pool the log-probabilities.

CCNet (Wenzek et al., 2020, facebookresearch/cc_net) ranks documents by the perplexity of a Wikipedia
5-gram model and splits them into head/middle/tail buckets; low perplexity means "reads like the model's
corpus". The same normalisation must be applied when training (`curate lm train`) and when scoring, so
`normalize_line` here is the one function both use.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from pydantic import Field

from curate.core.config import Fixed, NamesPath, Signal, StageConfig
from curate.core.errors import CurateError
from curate.core.files import local_copy
from curate.filters.base import Annotations, Doc, FilterSpec, FilterStageDef
from curate.filters.langid import normalize_language


class PerplexityConfig(StageConfig):
    enabled: bool = False
    model: Annotated[str | dict[str, str] | None, NamesPath("file")] = Field(
        None, description="KenLM model (ARPA or binary), or {lang: path}."
    )
    sentencepiece: Annotated[str | dict[str, str] | None, NamesPath("file")] = None
    max_perplexity: float | None = Field(None, gt=0, description="Reject above this; null only annotates.")
    buckets: tuple[float, float] = Field(
        (310.0, 1000.0), description="head < first <= middle < second <= tail (CCNet's English cut-offs)."
    )


# cc_net/text_normalizer.py: unicode punctuation -> ASCII (the "１" -> '"' entry is CCNet's own, kept
# so that scores match models trained with CCNet's pipeline).
UNICODE_PUNCT = {
    "，": ",",
    "。": ".",
    "、": ",",
    "„": '"',
    "”": '"',
    "“": '"',
    "«": '"',
    "»": '"',
    "１": '"',
    "」": '"',
    "「": '"',
    "《": '"',
    "》": '"',
    "´": "'",
    "∶": ":",
    "：": ":",
    "？": "?",
    "！": "!",
    "（": "(",
    "）": ")",
    "；": ";",
    "–": "-",
    "—": " - ",
    "．": ". ",
    "～": "~",
    "’": "'",
    "…": "...",
    "━": "-",
    "〈": "<",
    "〉": ">",
    "【": "[",
    "】": "]",
    "％": "%",
    "►": "-",
}
_PUNCT_TABLE = str.maketrans(UNICODE_PUNCT)
_DIGIT_RE = re.compile(r"\d")
_NON_PRINTING_RE = re.compile("[" + "".join(map(chr, [*range(32), *range(127, 160)])) + "]")

ANNOTATION_TYPES = {"perplexity": "float64", "ppl_bucket": "string"}
REASON = "perplexity"


def strip_accents(line: str) -> str:
    """Drop combining marks after NFD decomposition (CCNet's `strip_accents`)."""
    return "".join(c for c in unicodedata.normalize("NFD", line) if unicodedata.category(c) != "Mn")


def normalize_line(line: str) -> str:
    """CCNet's `normalize(line)` with its defaults: strip, lowercase, strip accents, digits -> 0, unicode
    punctuation -> ASCII, control characters removed."""
    line = line.strip()
    if not line:
        return line
    line = strip_accents(line.lower())
    line = _DIGIT_RE.sub("0", line)
    line = line.translate(_PUNCT_TABLE)
    return _NON_PRINTING_RE.sub("", line)


def perplexity_from_scores(log10_scores: Sequence[float], lengths: Sequence[int]) -> float:
    """CCNet's document perplexity: 10 ** (-sum(log10 p) / sum(tokens incl. </s>))."""
    return 10.0 ** (-sum(log10_scores) / sum(lengths))


def bucket(perplexity: float, cutoffs: tuple[float, float]) -> str:
    """CCNet's buckets: head below the first cut-off, tail at or above the second, middle between."""
    low, high = cutoffs
    if perplexity < low:
        return "head"
    return "middle" if perplexity < high else "tail"


@dataclass
class LanguageModel:
    """One language's scorer: a KenLM model and an optional SentencePiece tokenizer (as in CCNet)."""

    model: Any  # kenlm.Model
    tokenize: Callable[[str], str] | None = None

    def document_perplexity(self, text: str) -> float | None:
        """Perplexity of a document from its lines' scores; None when it has no scorable line."""
        scores: list[float] = []
        lengths: list[int] = []
        for raw in text.split("\n"):
            line = normalize_line(raw)
            if not line:
                continue
            if self.tokenize is not None:
                line = self.tokenize(line)
            scores.append(self.model.score(line, bos=True, eos=True))
            lengths.append(len(line.split()) + 1)  # + 1 for </s>
        return perplexity_from_scores(scores, lengths) if lengths else None


class PerplexityFilter:
    """Annotates `perplexity` and `ppl_bucket` with the model for the document's `lang` (or the single
    model); documents with no model for their language get None and are kept."""

    annotation_types = ANNOTATION_TYPES

    def __init__(
        self,
        models: Mapping[str | None, LanguageModel],
        buckets: tuple[float, float] = (310.0, 1000.0),
        max_perplexity: float | None = None,
    ):
        self._models = dict(models)
        self._buckets = buckets
        self._max = max_perplexity

    def _model_for(self, doc: Doc) -> LanguageModel | None:
        return self._models.get(doc.get("lang"), self._models.get(None))

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        out: list[Annotations] = []
        for doc in docs:
            model = self._model_for(doc)
            ppl = model.document_perplexity(doc.get("text") or "") if model else None
            out.append({"perplexity": ppl, "ppl_bucket": None if ppl is None else bucket(ppl, self._buckets)})
        return out

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        ppl = annotations.get("perplexity")
        if self._max is not None and ppl is not None and ppl > self._max:
            return REASON
        return None


def _per_language(value: str | dict[str, str] | None) -> dict[str | None, str]:
    """{lang: path} with codes as langid writes them ("eng" -> "en"); a single path serves every lang."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {None: value}
    return {normalize_language(lang): path for lang, path in value.items()}


def load_kenlm(path: str) -> Any:
    """A KenLM model (ARPA or binary) from a path, with a one-line error naming it."""
    import kenlm

    try:
        return kenlm.Model(local_copy(path))
    except (OSError, RuntimeError) as error:
        raise CurateError(
            f"{path}: cannot load KenLM model ({error}); train one with `curate lm train`"
        ) from None


def load_sentencepiece(path: str) -> Callable[[str], str]:
    """A function turning a normalised line into space-joined SentencePiece pieces (CCNet's `sp` step)."""
    try:
        import sentencepiece
    except ImportError:
        raise CurateError(
            f"stages.perplexity.sentencepiece: {path} needs the sentencepiece package "
            "(pip install sentencepiece)"
        ) from None
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=local_copy(path))
    except (OSError, RuntimeError) as error:
        raise CurateError(f"{path}: cannot load SentencePiece model ({error})") from None
    return lambda line: " ".join(processor.encode(line, out_type=str))


def make_filter(cfg: PerplexityConfig) -> PerplexityFilter:
    """Load every configured model (once per worker)."""
    pieces = _per_language(cfg.sentencepiece)
    models = {}
    for lang, path in _per_language(cfg.model).items():
        piece_path = pieces.get(lang, pieces.get(None))
        models[lang] = LanguageModel(load_kenlm(path), load_sentencepiece(piece_path) if piece_path else None)
    return PerplexityFilter(models, (cfg.buckets[0], cfg.buckets[1]), cfg.max_perplexity)


def stage_spec(cfg: PerplexityConfig) -> FilterSpec:
    if not cfg.model:
        raise CurateError(
            "stages.perplexity.model: a KenLM model path (or {lang: path}) is required when the stage is "
            "enabled; train one with `curate lm train --corpus TEXT --output model.binary`"
        )
    return FilterSpec(partial(make_filter, cfg))


STAGE = FilterStageDef(
    name="perplexity",
    config=PerplexityConfig,
    spec=stage_spec,
    annotations=Fixed(ANNOTATION_TYPES),
    signals=(Signal("perplexity", thresholds=("max_perplexity",), log=True, model=True),),
)

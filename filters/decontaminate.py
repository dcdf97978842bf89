"""Benchmark decontamination: find documents that share a word n-gram (13 by default, as GPT-3 and
datatrove's decont/n_grams.py) with evaluation sets, and remove them or only the overlapping lines.

Text is normalised exactly as the dedup stages normalise it (filters/dedup_text.py: lower case, no
punctuation, digits as 0, whitespace collapsed), so "The Answer: 42." in a page matches "the answer 42"
in a benchmark. The index is a sorted array of 64-bit n-gram hashes and, beside it, a bit per evaluation
set that holds the n-gram (up to 64 sets per index): built once (`curate decont index`, or in the driver
for small sets), loaded once per worker, looked up with one vectorised `searchsorted` per document.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from curate.core.config import MAX_BATCH, Fixed, NamesPath, StageConfig, Strict
from curate.core.errors import CurateError
from curate.core.files import check_confined
from curate.filters.base import Annotations, Doc, FilterSpec, FilterStageDef
from curate.filters.dedup_text import Normalization, ngram_positions

MAX_EVAL_SETS = 64  # one bit each in the index's uint64 membership column
REASON_PREFIX = "eval_"  # rejection reason: eval_<set name> (stats.json counts removals per set)
INDEX_FORMAT = 1


class EvalSetConfig(Strict):
    """One evaluation set: files, and which fields of each record are benchmark text."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    paths: Annotated[list[str], NamesPath("glob")] = Field(
        min_length=1, description="JSONL(.gz/.zst), Parquet or text files, or globs."
    )
    fields: list[str] = Field(
        default_factory=lambda: ["text"],
        description="Record fields joined into one item (lists, e.g. choices, are joined too).",
    )
    format: Literal["auto", "jsonl", "parquet", "text"] = Field(
        "auto", description="text: every non-empty line is one item."
    )


class DecontaminateConfig(StageConfig):
    """The `decontaminate` stage."""

    enabled: bool = False
    eval_sets: list[EvalSetConfig] = Field(
        default_factory=list, description="Built into an index in the driver."
    )
    index: Annotated[str | None, NamesPath("file")] = Field(
        None, description="An index from `curate decont index` (instead of eval_sets)."
    )
    ngram: int = Field(13, ge=1, le=64, description="Words per n-gram (GPT-3's and datatrove's 13).")
    mode: Literal["document", "lines"] = Field(
        "document", description="document: reject the page; lines: drop only the lines that overlap."
    )
    min_matches: int = Field(
        1, ge=1, description="Distinct shared n-grams that make a document contaminated."
    )
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="Documents per annotate call.")

    @model_validator(mode="after")
    def _one_source(self) -> DecontaminateConfig:
        if self.enabled and not self.eval_sets and not self.index:
            raise ValueError("stages.decontaminate needs eval_sets or index")
        if self.eval_sets and self.index:
            raise ValueError("give eval_sets or index, not both (the index fixes its own sets)")
        if len(self.eval_sets) > MAX_EVAL_SETS:
            raise ValueError(f"at most {MAX_EVAL_SETS} eval sets per index")
        return self


ANNOTATIONS: dict[str, str] = {"decont_ngrams": "int32", "decont_sets": "string", "decont_lines": "int32"}
NORMALIZATION = Normalization()  # dedup_exact's defaults: lowercase, whitespace, punctuation, digits


def words_of(text: str) -> list[str]:
    return NORMALIZATION.words(text)


# ----------------------------------------------------------------------------------- eval sets


def _detect(path: str) -> str:
    name = path.lower().removesuffix(".gz").removesuffix(".zst")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    return "text"


def _item_text(record: dict[str, Any], fields: Sequence[str]) -> str:
    parts: list[str] = []
    for field in fields:
        value = record.get(field)
        if isinstance(value, list | tuple):
            parts += [str(v) for v in value if v is not None]
        elif isinstance(value, dict):
            parts += [str(v) for v in value.values() if v is not None]
        elif value is not None:
            parts.append(str(value))
    return " ".join(parts)


def eval_items(spec: EvalSetConfig, label: str | None = None) -> Iterator[str]:
    """The benchmark texts of one evaluation set, one per record (or line of a text file); errors name
    ``label`` (default: the set)."""
    from curate.core.files import open_text

    label = label or f"eval set '{spec.name}'"
    paths = sorted({p for pattern in spec.paths for p in (glob.glob(pattern) or [pattern])})
    for path in paths:
        if not Path(path).is_file():
            raise CurateError(f"{label}: {path} not found")
        check_confined(path)  # in a job of `curate serve`: still inside its roots
        fmt = spec.format if spec.format != "auto" else _detect(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            missing = [f for f in spec.fields if f not in table.column_names]
            if missing:
                raise CurateError(f"{label}: {path} has no column(s) {missing} (has {table.column_names})")
            for batch in table.select(spec.fields).to_batches():
                for record in batch.to_pylist():
                    yield _item_text(record, spec.fields)
            continue
        with open(path, "rb") as raw, open_text(raw, path, errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                if fmt == "text":
                    yield line
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    raise CurateError(f"{label}: {path} line {number} is not JSON") from None
                yield _item_text(record, spec.fields)


# -------------------------------------------------------------------------------------- index


@dataclass
class NgramIndex:
    """Sorted distinct n-gram hashes and, per hash, the bit mask of the evaluation sets holding it."""

    hashes: np.ndarray  # uint64, sorted, distinct
    sets: np.ndarray  # uint64 bit masks, aligned with hashes
    names: list[str]
    ngram: int
    items: dict[str, int]  # items per set that gave at least one n-gram
    short_items: dict[str, int]  # items shorter than ngram words (no n-gram; reported, not indexed)

    def lookup(self, ngram_hashes: np.ndarray) -> np.ndarray:
        """Per query hash, the set mask (0: not in any evaluation set)."""
        if len(self.hashes) == 0 or len(ngram_hashes) == 0:
            return np.zeros(len(ngram_hashes), dtype=np.uint64)
        where = np.searchsorted(self.hashes, ngram_hashes)
        where[where == len(self.hashes)] = 0
        found = self.hashes[where] == ngram_hashes
        return np.where(found, self.sets[where], np.uint64(0))

    def set_names(self, mask: int) -> list[str]:
        return [name for bit, name in enumerate(self.names) if mask >> bit & 1]

    def save(self, path: str) -> None:
        meta = {
            "format": INDEX_FORMAT,
            "names": self.names,
            "ngram": self.ngram,
            "items": self.items,
            "short_items": self.short_items,
            "normalization": "dedup_text.Normalization() defaults",
        }
        with open(path, "wb") as handle:
            np.savez(handle, hashes=self.hashes, sets=self.sets, meta=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path: str, key: str = "stages.decontaminate.index") -> NgramIndex:
        if not Path(path).is_file():
            raise CurateError(f"{key}: n-gram index {path} not found; build it with `curate decont index`")
        check_confined(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                hashes, sets = data["hashes"], data["sets"]
        except (ValueError, KeyError, OSError) as error:
            raise CurateError(f"{key}: {path} is not a curate n-gram index ({error})") from None
        if meta.get("format") != INDEX_FORMAT:
            raise CurateError(f"{key}: {path} has index format {meta.get('format')}, expected {INDEX_FORMAT}")
        return cls(hashes, sets, meta["names"], meta["ngram"], meta["items"], meta["short_items"])


def build_index(eval_sets: Sequence[EvalSetConfig], ngram: int = 13) -> NgramIndex:
    """Hash every n-gram of every item; memory is 16 bytes per distinct n-gram."""
    if len(eval_sets) > MAX_EVAL_SETS:
        raise CurateError(f"at most {MAX_EVAL_SETS} eval sets per index, got {len(eval_sets)}")
    names = [spec.name for spec in eval_sets]
    if len(set(names)) != len(names):
        raise CurateError(f"eval set names must be distinct: {names}")
    chunks_h: list[np.ndarray] = []
    chunks_s: list[np.ndarray] = []
    items = dict.fromkeys(names, 0)
    short = dict.fromkeys(names, 0)
    for bit, spec in enumerate(eval_sets):
        pending: list[np.ndarray] = []
        for text in eval_items(spec):
            hashes = ngram_positions(words_of(text), ngram)
            if len(hashes) == 0:
                short[spec.name] += 1
                continue
            items[spec.name] += 1
            pending.append(hashes)
        if pending:
            unique = np.unique(np.concatenate(pending))
            chunks_h.append(unique)
            chunks_s.append(np.full(len(unique), np.uint64(1) << np.uint64(bit), dtype=np.uint64))
    if not chunks_h:
        return NgramIndex(np.empty(0, np.uint64), np.empty(0, np.uint64), names, ngram, items, short)
    hashes = np.concatenate(chunks_h)
    sets = np.concatenate(chunks_s)
    order = np.argsort(hashes, kind="stable")
    hashes, sets = hashes[order], sets[order]
    starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
    merged = np.bitwise_or.reduceat(sets, starts)  # an n-gram in several sets carries all their bits
    return NgramIndex(hashes[starts], merged, names, ngram, items, short)


# ------------------------------------------------------------------------------------- filter


class Decontaminator:
    """Annotates shared n-grams and the sets they come from; removes the page or the overlapping lines."""

    annotation_types = ANNOTATIONS

    def __init__(self, index: NgramIndex, mode: str = "document", min_matches: int = 1):
        self.index = index
        self.mode = mode
        self.min_matches = min_matches

    def _scan(self, text: str) -> tuple[int, int, set[int] | None]:
        """(distinct shared n-grams, set mask, lines touched by one: only in lines mode)."""
        n = self.index.ngram
        if self.mode == "lines":
            line_words = [words_of(line) for line in text.split("\n")]
            words = [w for ws in line_words for w in ws]
            line_of = np.repeat(np.arange(len(line_words)), [len(ws) for ws in line_words])
        else:
            words = words_of(text)
        hashes = ngram_positions(words, n)
        masks = self.index.lookup(hashes)
        hit = np.flatnonzero(masks)
        if len(hit) == 0:
            return 0, 0, set() if self.mode == "lines" else None
        mask = int(np.bitwise_or.reduce(masks[hit]))
        distinct = len(np.unique(hashes[hit]))
        lines: set[int] | None = None
        if self.mode == "lines":
            lines = set()
            for start in hit:  # an n-gram may span lines: every line it touches goes
                lines.update(range(int(line_of[start]), int(line_of[start + n - 1]) + 1))
        return distinct, mask, lines

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        out: list[Annotations] = []
        for doc in docs:
            text = doc.get("text") or ""
            distinct, mask, lines = self._scan(text)
            names = self.index.set_names(mask)
            annotations: Annotations = {
                "decont_ngrams": distinct,
                "decont_sets": ",".join(names) if names else None,
                "decont_lines": len(lines) if lines else 0,
            }
            if self.mode == "lines" and lines and distinct >= self.min_matches:
                kept = [line for i, line in enumerate(text.split("\n")) if i not in lines]
                annotations["text"] = "\n".join(kept).strip()
            out.append(annotations)
        return out

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        if annotations["decont_ngrams"] < self.min_matches:
            return None
        if self.mode == "lines" and (doc.get("text") or "").strip():
            return None  # the overlapping lines are gone; the rest stays
        first_set = annotations["decont_sets"].split(",")[0]
        return REASON_PREFIX + first_set


def load_index(cfg: DecontaminateConfig) -> NgramIndex:
    """The configured index: loaded from `index`, or built from `eval_sets` (in the driver)."""
    if cfg.index:
        index = NgramIndex.load(cfg.index)
        if index.ngram != cfg.ngram:
            raise CurateError(
                f"stages.decontaminate.index: {cfg.index} holds {index.ngram}-grams but ngram is {cfg.ngram}"
            )
        return index
    return build_index(cfg.eval_sets, cfg.ngram)


def _make(cfg: DecontaminateConfig, index: NgramIndex | None) -> Decontaminator:
    return Decontaminator(index if index is not None else load_index(cfg), cfg.mode, cfg.min_matches)


def stage_spec(cfg: DecontaminateConfig) -> FilterSpec:
    """Small eval sets are indexed here, in the driver, and travel with the stage; an index file is
    checked here and loaded once per worker."""
    if cfg.index:
        load_index(cfg)  # fail now with a one-line error if it is missing or built for another n
        return FilterSpec(partial(_make, cfg, None))
    return FilterSpec(partial(_make, cfg, build_index(cfg.eval_sets, cfg.ngram)))


STAGE = FilterStageDef(
    name="decontaminate", config=DecontaminateConfig, spec=stage_spec, annotations=Fixed(ANNOTATIONS)
)

"""The recipe: one YAML file, validated by pydantic, that says what a run reads, does and writes.

Stage names and keys are a public contract (recipes are kept under version control by users), so they
only ever gain fields. Unknown keys are errors: a typo in a threshold must not be silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curate.core.errors import CurateError
from curate.filters.classifier import ClassifierConfig
from curate.filters.decontaminate import DecontaminateConfig
from curate.filters.pii import PiiConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------- I/O


class InputConfig(Strict):
    paths: list[str] = Field(default_factory=list, description="Files or globs; anything Beam can open.")
    format: Literal["auto", "warc", "wet", "jsonl", "parquet"] = "auto"
    id_field: str = "id"
    url_field: str = "url"
    text_field: str = "text"


class OutputConfig(Strict):
    path: str = "out"
    documents: bool = Field(True, description="Write kept documents (text + annotations) as Parquet.")
    rejected: bool = Field(True, description="Write rejected documents with stage and reason as Parquet.")
    dataset: str | None = Field(None, description="Commit the run to this dataset in the version store.")
    branch: str = Field("main", description="Branch of `dataset` that the run's commit goes on.")


class RunnerConfig(Strict):
    name: Literal["direct", "portable", "dataflow", "flink", "spark", "prism"] = "direct"
    workers: int = Field(2, ge=1, description="Worker processes for the direct runner.")
    job_endpoint: str | None = Field(None, description="HOST:PORT of a Beam job service (portable runner).")
    environment_type: str = Field("LOOPBACK", description="SDK harness environment for portable runners.")
    options: dict[str, Any] = Field(default_factory=dict, description="Extra Beam pipeline options.")

    @model_validator(mode="after")
    def _portable_needs_endpoint(self) -> RunnerConfig:
        if self.name == "portable" and not self.job_endpoint:
            raise ValueError("runner 'portable' needs job_endpoint (HOST:PORT of a Beam job service)")
        return self


# ------------------------------------------------------------------------------------------ stages


class StageConfig(Strict):
    enabled: bool = True


class ExtractConfig(StageConfig):
    extractor: Literal["resiliparse", "trafilatura"] = Field(
        "resiliparse", description="HTML main-text extractor for WARC responses."
    )
    min_chars: int = Field(1, ge=0, description="Reject extractions shorter than this (reason: empty).")
    max_html_bytes: int = Field(
        5_000_000, ge=1, description="Pages larger than this are rejected (reason: too_large)."
    )


class LangIdConfig(StageConfig):
    model: str | None = Field(None, description="fastText LID model path; default: lid.176.ftz (PyPI).")
    languages: list[str] | None = Field(["en"], description="Allowed ISO codes; null or 'all' keeps all.")
    min_score: float = Field(0.65, ge=0.0, le=1.0, description="FineWeb's language score threshold.")

    @field_validator("languages", mode="before")
    @classmethod
    def _all_languages(cls, value: Any) -> Any:
        # `languages: all` reads better in a recipe than `null`; a single code is a one-item list.
        if isinstance(value, str):
            return None if value.lower() == "all" else [value]
        return value


class UrlFilterConfig(StageConfig):
    """Block documents by URL: listed domains (and their subdomains), listed URLs, banned words."""

    enabled: bool = False
    blocklists: list[str] = Field(
        default_factory=list,
        description="Files: one domain (blocks its subdomains too) or full URL a line; '#' starts a comment.",
    )
    banned_words: list[str] = Field(default_factory=list, description="Files: one word a line, for URLs.")
    banned_word_min_hits: int = Field(1, ge=1, description="Banned words in a URL before it is rejected.")
    batch_size: int = Field(1024, ge=1, description="Documents per annotate call.")


# Quality rule groups. A threshold set to null turns that one rule off (its signal is still annotated);
# `enabled: false` turns the whole group off. Defaults are the published values as implemented in
# datatrove 0.10.1 (src/datatrove/pipeline/filters/*), the reference the benchmark compares against.


class GopherRepetitionConfig(Strict):
    """Gopher repetition rules: Rae et al. 2021 (arXiv:2112.11446), Table A1."""

    enabled: bool = True
    dup_para_frac: float | None = Field(0.3, description="Max fraction of duplicated paragraphs.")
    dup_para_char_frac: float | None = Field(0.2, description="Max chars in duplicated paragraphs / all.")
    dup_line_frac: float | None = Field(0.3, description="Max fraction of duplicated lines.")
    dup_line_char_frac: float | None = Field(0.2, description="Max chars in duplicated lines / all.")
    top_2gram_char_frac: float | None = Field(0.2, description="Max chars of the top word 2-gram / all.")
    top_3gram_char_frac: float | None = 0.18
    top_4gram_char_frac: float | None = 0.16
    dup_5gram_char_frac: float | None = Field(0.15, description="Max chars in repeated 5-grams / all.")
    dup_6gram_char_frac: float | None = 0.14
    dup_7gram_char_frac: float | None = 0.13
    dup_8gram_char_frac: float | None = 0.12
    dup_9gram_char_frac: float | None = 0.11
    dup_10gram_char_frac: float | None = 0.10


class GopherQualityConfig(Strict):
    """Gopher quality rules: Rae et al. 2021 (arXiv:2112.11446), sec. A.1.1."""

    enabled: bool = True
    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    max_symbol_word_ratio: float | None = Field(0.1, description="'#' or ellipses per word.")
    max_bullet_lines_ratio: float | None = Field(0.9, description="Lines starting with a bullet or '-'.")
    max_ellipsis_lines_ratio: float | None = Field(0.3, description="Lines ending with an ellipsis.")
    min_alpha_words_ratio: float | None = Field(0.8, description="Words with a letter / all tokens.")
    min_stop_words: int | None = Field(2, description="Distinct stop words of the document's language.")
    stop_words: dict[str, list[str]] = Field(
        default_factory=dict, description="Replace a language's stop words: {lang: [words]}."
    )


class C4Config(Strict):
    """C4 rules: Raffel et al. 2020 (JMLR 21(140)) and tensorflow_datasets c4_utils, as in datatrove.

    Line rules (no terminal punctuation, javascript, policy, too few words, too long word) drop lines,
    which then do not count as sentences; documents are rejected for lorem ipsum, a curly bracket, or too
    few sentences left. The text itself is rewritten only with `remove_lines` (off, as in curate's
    FineWeb-like default; datatrove's C4QualityFilter always rewrites).
    """

    enabled: bool = True
    terminal_punct: bool = Field(
        False, description="Drop lines without terminal punctuation (C4: true; FineWeb's recipe: false)."
    )
    javascript: bool = Field(True, description="Drop lines mentioning 'javascript'.")
    policy: bool = Field(True, description="Drop lines about terms of use, privacy or cookie policies.")
    remove_citations: bool = Field(True, description="Strip [1], [edit], [citation needed] first.")
    min_words_per_line: int | None = Field(3, description="Drop lines with fewer words.")
    max_word_length: int | None = Field(1000, description="Drop lines with a longer word.")
    lorem_ipsum: bool = Field(True, description="Reject documents containing 'lorem ipsum'.")
    curly_bracket: bool = Field(True, description="Reject documents containing '{'.")
    min_sentences: int | None = Field(5, description="Reject documents with fewer sentences left.")
    remove_lines: bool = Field(
        False, description="Rewrite kept documents without the lines C4's line rules drop (as datatrove)."
    )


class FineWebConfig(Strict):
    """FineWeb's own rules: Penedo et al. 2024 (arXiv:2406.17557), datatrove FineWebQualityFilter."""

    enabled: bool = True
    line_punct_thr: float | None = Field(0.12, description="Min fraction of lines ending in punctuation.")
    line_punct_exclude_zero: bool = Field(False, description="Keep documents with no such line at all.")
    short_line_thr: float | None = Field(0.67, description="Max fraction of short lines.")
    short_line_length: int = Field(30, description="A line of at most this many characters is short.")
    char_duplicates_ratio: float | None = Field(0.01, description="Max chars in duplicated lines / all.")
    new_line_ratio: float | None = Field(0.3, description="Max newlines per word (list-like pages).")


def _group_toggle(value: Any) -> Any:
    # `c4: false` is the natural way to switch a whole group off.
    return {"enabled": value} if isinstance(value, bool) else value


class QualityConfig(StageConfig):
    """Heuristic rules, applied in FineWeb's order; each rejection names its rule (e.g. c4_lorem_ipsum)."""

    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    c4: C4Config = Field(default_factory=C4Config)
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    batch_size: int = Field(256, ge=1, description="Documents per annotate call.")

    _groups = field_validator("gopher_repetition", "gopher_quality", "c4", "fineweb", mode="before")(
        _group_toggle
    )


class ToxicityConfig(StageConfig):
    enabled: bool = False
    threshold: float = Field(0.9, ge=0.0, le=1.0, description="Reject when toxicity >= threshold.")
    classifier: Literal["alt-profanity-check"] | None = Field(
        "alt-profanity-check", description="Trained classifier shipped on PyPI; null for none."
    )
    wordlists: list[str] | dict[str, str | list[str]] = Field(
        default_factory=list, description="Keyword files (e.g. LDNOOBW) for all docs, or {lang: files}."
    )
    word_min_hits: int = Field(1, ge=1, description="Keyword hits that reject a document (C4: any).")
    fasttext_model: str | None = Field(None, description="Optional fastText toxicity classifier.")
    fasttext_label: str = Field("toxic", description="Its toxic label (Dolma's Jigsaw models: toxic).")


class PerplexityConfig(StageConfig):
    enabled: bool = False
    model: str | dict[str, str] | None = Field(
        None, description="KenLM model (ARPA or binary), or {lang: path}."
    )
    sentencepiece: str | dict[str, str] | None = None
    max_perplexity: float | None = Field(None, gt=0, description="Reject above this; null only annotates.")
    buckets: tuple[float, float] = Field(
        (310.0, 1000.0), description="head < first <= middle < second <= tail (CCNet's English cut-offs)."
    )


class DedupExactConfig(StageConfig):
    """What does not make two texts different (defaults: datatrove's simplify_text)."""

    lowercase: bool = True
    normalize_whitespace: bool = True
    strip_punctuation: bool = True
    normalize_digits: bool = Field(True, description="Every digit counts as 0 (page counters, dates).")


class DedupMinhashConfig(StageConfig):
    """MinHash-LSH near-duplicates (see filters/minhash.py for why these defaults).

    FineWeb's 14 x 8 bands (112 perms) find a pair at Jaccard 0.8 only 92% of the time. With 128 perms,
    threshold 0.7 and false negatives weighted 0.8, datasketch's parameter choice gives 18 x 7 bands:
    98.6% at 0.8, 99.9% at 0.9; the candidates it admits below the threshold (13% at 0.5) are dropped
    by verifying the estimated Jaccard against the threshold before linking.
    """

    ngram: int = Field(5, ge=1, description="Shingle size (FineWeb: 5-grams of words).")
    unit: Literal["word", "char"] = "word"
    num_perm: int = Field(128, ge=8)
    threshold: float = Field(0.7, gt=0, lt=1, description="Jaccard similarity that makes a duplicate.")
    bands: int | None = Field(None, ge=1, description="Explicit LSH bands (with rows), e.g. FineWeb's 14.")
    rows: int | None = Field(None, ge=1, description="Explicit LSH rows per band, e.g. FineWeb's 8.")
    false_negative_weight: float = Field(
        0.8, gt=0, lt=1, description="Weight of missed pairs vs candidates when bands/rows are chosen."
    )
    seed: int = 1
    verify: bool = Field(True, description="Link a candidate pair only if estimated Jaccard >= threshold.")
    components_rounds: int = Field(16, ge=1, description="Unrolled connected-components rounds.")
    batch_size: int = Field(256, ge=1, description="Documents per vectorised signature batch.")

    @model_validator(mode="after")
    def _bands_fit(self) -> DedupMinhashConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither (then they follow from threshold)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


class DomainRule(Strict):
    """One rule of `mixing.rules`; every condition it sets must hold. Rules are tried in order."""

    domain: str
    url_host: str | None = Field(None, description="Glob on the URL host, e.g. '*.wikipedia.org'.")
    source: str | None = Field(None, description="Glob on the source file path.")
    lang: str | None = None
    annotation: str | None = Field(None, description="A document annotation or input metadata field.")
    equals: Any = Field(None, description="The annotation's value; null: the annotation is present.")
    at_least: float | None = Field(None, description="The annotation is a number >= this.")
    at_most: float | None = Field(None, description="The annotation is a number <= this.")

    @model_validator(mode="after")
    def _has_a_condition(self) -> DomainRule:
        if (self.at_least is not None or self.at_most is not None) and self.annotation is None:
            raise ValueError(f"rule for domain '{self.domain}': at_least/at_most need an annotation")
        if self.url_host is None and self.source is None and self.lang is None and self.annotation is None:
            raise ValueError(
                f"rule for domain '{self.domain}' sets no condition (url_host, source, lang, annotation)"
            )
        return self


class MixingConfig(StageConfig):
    enabled: bool = False
    rules: list[DomainRule] = Field(default_factory=list)
    default_domain: str = "web"
    weights: dict[str, float] = Field(default_factory=dict, description="Target token share per domain.")
    token_budget: int | None = Field(
        None, gt=0, description="Output tokens; null: as many as the data allows."
    )
    max_epochs: float = Field(4.0, ge=1.0, description="Most times a document may be repeated to up-sample.")
    seed: int = 0

    @model_validator(mode="after")
    def _weights_name_known_domains(self) -> MixingConfig:
        known = {rule.domain for rule in self.rules} | {self.default_domain}
        unknown = sorted(set(self.weights) - known)
        if unknown:
            raise ValueError(
                f"weights name domain(s) {unknown} that no rule assigns (known: {sorted(known)})"
            )
        if any(w < 0 for w in self.weights.values()) or (self.weights and sum(self.weights.values()) <= 0):
            raise ValueError("weights must be >= 0 and not all zero")
        return self


class TokenizerTrainConfig(Strict):
    vocab_size: int = Field(32000, ge=256)
    sample_chars: int = Field(
        200_000_000, ge=1, description="Train on the smallest-id-hash documents up to this many characters."
    )


class TokenizeConfig(StageConfig):
    tokenizer: str = Field("gpt2", description="'gpt2' (bundled BPE) or a tokenizer.json path.")
    train: TokenizerTrainConfig | None = None
    batch_size: int = Field(256, ge=1)
    shard_tokens: int = Field(50_000_000, ge=1, description="Target tokens per shard.")
    row_group_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    seed: int = 0
    order_by: str | None = Field(None, description="Curriculum: order by this annotation, not shuffle.")


class StagesConfig(Strict):
    extract: ExtractConfig = Field(default_factory=ExtractConfig)
    url_filter: UrlFilterConfig = Field(default_factory=UrlFilterConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    toxicity: ToxicityConfig = Field(default_factory=ToxicityConfig)
    perplexity: PerplexityConfig = Field(default_factory=PerplexityConfig)
    dedup_exact: DedupExactConfig = Field(default_factory=DedupExactConfig)
    dedup_minhash: DedupMinhashConfig = Field(default_factory=DedupMinhashConfig)
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    mixing: MixingConfig = Field(default_factory=MixingConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)


class Config(Strict):
    input: InputConfig = Field(default_factory=InputConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    stages: StagesConfig = Field(default_factory=StagesConfig)

    @model_validator(mode="after")
    def _mixing_needs_tokenize(self) -> Config:
        # Mixing targets shares of output tokens and happens while the shards are written.
        if self.stages.mixing.enabled and not self.stages.tokenize.enabled:
            raise ValueError("stages.mixing needs stages.tokenize enabled (mixing targets token shares)")
        return self

    @field_validator("input", mode="before")
    @classmethod
    def _input_as_list(cls, value: Any) -> Any:
        # `input: path/*.warc.gz` and `input: [a, b]` are both natural to write.
        if isinstance(value, str | list):
            return {"paths": [value] if isinstance(value, str) else value}
        return value

    @field_validator("output", mode="before")
    @classmethod
    def _output_as_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class ConfigError(CurateError, ValueError):
    """A recipe that cannot run; the message is one line naming the file and key."""


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{source}: {key}: {first['msg']}{more}"


def parse_config(data: Any, source: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: invalid YAML: {getattr(error, 'problem', error)}") from None
    return parse_config(data, str(path))


def default_config() -> Config:
    return Config()


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

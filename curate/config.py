"""The recipe: one YAML file, validated by pydantic, that says what a run reads, does and writes.

Stage names and keys are a public contract (recipes are kept under version control by users), so they
only ever gain fields. Unknown keys are errors: a typo in a threshold must not be silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from curate.errors import CurateError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


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
    languages: list[str] | None = Field(["en"], description="Allowed ISO codes; null keeps all.")
    min_score: float = Field(0.65, ge=0.0, le=1.0, description="FineWeb's language score threshold.")


class UrlFilterConfig(StageConfig):
    enabled: bool = False
    blocklists: list[str] = Field(default_factory=list, description="Files: one domain or URL a line.")
    banned_words: list[str] = Field(default_factory=list, description="Files: one word a line, for URLs.")
    banned_word_min_hits: int = Field(1, ge=1, description="Banned words in a URL before it is rejected.")


class QualityConfig(StageConfig):
    """Rule groups; each rule's threshold defaults to the published value (see filters/quality)."""

    gopher_quality: dict[str, Any] | bool = True
    gopher_repetition: dict[str, Any] | bool = True
    c4: dict[str, Any] | bool = True
    fineweb: dict[str, Any] | bool = True


class ToxicityConfig(StageConfig):
    enabled: bool = False
    threshold: float = Field(0.9, ge=0.0, le=1.0, description="Reject when toxicity >= threshold.")
    wordlists: list[str] = Field(default_factory=list, description="Keyword files (e.g. LDNOOBW).")
    fasttext_model: str | None = Field(None, description="Optional fastText toxicity classifier.")


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
    domain: str
    url_host: str | None = Field(None, description="Glob on the URL host, e.g. '*.wikipedia.org'.")
    source: str | None = Field(None, description="Glob on the source file path.")
    lang: str | None = None
    annotation: str | None = None
    equals: Any = None


class MixingConfig(StageConfig):
    enabled: bool = False
    rules: list[DomainRule] = Field(default_factory=list)
    default_domain: str = "web"
    weights: dict[str, float] = Field(default_factory=dict, description="Target token share per domain.")
    token_budget: int | None = Field(None, gt=0)
    max_epochs: float = Field(4.0, ge=1.0)
    seed: int = 0


class TokenizerTrainConfig(Strict):
    vocab_size: int = Field(32000, ge=256)


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
    toxicity: ToxicityConfig = Field(default_factory=ToxicityConfig)
    perplexity: PerplexityConfig = Field(default_factory=PerplexityConfig)
    dedup_exact: DedupExactConfig = Field(default_factory=DedupExactConfig)
    dedup_minhash: DedupMinhashConfig = Field(default_factory=DedupMinhashConfig)
    mixing: MixingConfig = Field(default_factory=MixingConfig)
    tokenize: TokenizeConfig = Field(default_factory=TokenizeConfig)


class Config(Strict):
    input: InputConfig = Field(default_factory=InputConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    stages: StagesConfig = Field(default_factory=StagesConfig)

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

"""CCNet-style perplexity logic (filters/perplexity.py): normalisation, pooling, buckets, decisions.

Scoring with a real KenLM model trained by `curate lm train` is tested in tests/test_lm.py.
"""

from __future__ import annotations

import pytest

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.filters.perplexity import (
    ANNOTATION_TYPES,
    STAGE,
    PerplexityConfig,
    bucket,
    normalize_line,
    perplexity_from_scores,
    stage_spec,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("  Hello World  ", "hello world"),
        ("Born in 1984, aged 37.", "born in 0000, aged 00."),
        ("Café à São Paulo, Zürich", "cafe a sao paulo, zurich"),
        ("«Bonjour» — dit-il…", '"bonjour"  -  dit-il...'),  # CCNet maps "—" to " - "
        ("你好，世界。", "你好,世界."),
        ("tab\there\x07bell", "tabherebell"),  # control characters are removed, as in CCNet
        ("   ", ""),
    ],
)
def test_ccnet_normalisation(raw, normalised):
    assert normalize_line(raw) == normalised


def test_normalisation_of_real_text_is_idempotent_and_ascii_digits_free(jsonl_rows):
    lines = [line for row in jsonl_rows for line in row["text"].split("\n")]
    normalised = [normalize_line(line) for line in lines]
    assert all(normalize_line(line) == line for line in normalised)
    assert not any(ch.isdigit() and ch != "0" for line in normalised for ch in line)
    assert not any(ch.isupper() for line in normalised for ch in line)


def test_document_perplexity_pools_lines_as_ccnet():
    # two lines scoring log10 -6 and -9 over 2 + 3 words (+ </s> each): 10 ** (15 / 7)
    assert perplexity_from_scores([-6.0, -9.0], [3, 4]) == pytest.approx(10 ** (15 / 7))


@pytest.mark.parametrize(
    ("ppl", "name"), [(10.0, "head"), (310.0, "middle"), (999.9, "middle"), (1000.0, "tail")]
)
def test_buckets_follow_the_cutoffs(ppl, name):
    assert bucket(ppl, (310.0, 1000.0)) == name


def test_stage_needs_a_model_path():
    cfg = parse_config({"stages": {"perplexity": {"enabled": True}}}).stages.perplexity
    with pytest.raises(CurateError, match="stages.perplexity.model: .*curate lm train"):
        stage_spec(cfg)


def test_missing_model_file_is_a_one_line_error(tmp_path):
    spec = stage_spec(PerplexityConfig(enabled=True, model=str(tmp_path / "none.binary")))
    declared = STAGE.annotations(PerplexityConfig(enabled=True))
    assert declared == ANNOTATION_TYPES == {"perplexity": "float64", "ppl_bucket": "string"}
    with pytest.raises(CurateError, match="none.binary: cannot load KenLM model"):
        spec.make()

"""The validator refuses recipes that cannot work, and `config validate` checks what `run` checks
(issue case 10; the corrupt Parquet row group of this case is in test_damaged_inputs.py)."""

from __future__ import annotations

import pytest

from curate.cli import main
from tests.conftest import shared_path
from tests.robustness.conftest import write_recipe


def _validate(capsys, recipe, *flags: str) -> tuple[int, list[str]]:
    status = main(["config", "validate", str(recipe), *flags])
    captured = capsys.readouterr()
    return status, (captured.err or captured.out).strip().splitlines()


def _recipe(tmp_path, stages: dict, inputs: list[str] | None = None, output: str | None = None):
    inputs = inputs if inputs is not None else [str(shared_path("jsonl", "cc_en_head-0091.jsonl.gz"))]
    return write_recipe(
        tmp_path / "recipe.yaml", inputs, output if output is not None else tmp_path / "out", stages
    )


@pytest.mark.parametrize(
    ("stages", "fragment"),
    [
        ({"langid": {"languages": ["en", "english"]}}, "stages.langid: english: not among the 176 languages"),
        ({"langid": {"languages": ["xx"]}}, "stages.langid: xx: not among"),
        ({"quality": {"gopher_repetition": {"dup_para_frac": -1}}}, "dup_para_frac: Input should be greater"),
        ({"quality": {"fineweb": {"line_punct_thr": 1.5}}}, "line_punct_thr: Input should be less than"),
        ({"quality": {"gopher_quality": {"min_doc_words": 500, "max_doc_words": 100}}}, "every document"),
        ({"quality": {"c4": {"min_sentences": -1}}}, "c4.min_sentences: Input should be greater"),
    ],
)
def test_settings_that_would_reject_everything_are_refused(capsys, tmp_path, stages, fragment):
    recipe = _recipe(tmp_path, stages)
    status, lines = _validate(capsys, recipe, "--no-files")
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith(f"curate: error: {recipe}: ") and fragment in lines[0]


def test_language_codes_in_other_forms_are_accepted(capsys, tmp_path):
    status, lines = _validate(capsys, _recipe(tmp_path, {"langid": {"languages": ["eng", "de", "zh"]}}))
    assert status == 0 and lines[0].endswith("files checked)")


@pytest.mark.parametrize(
    ("key", "stages"),
    [
        (
            "stages.url_filter.blocklists",
            lambda path: {"url_filter": {"enabled": True, "blocklists": [path]}},
        ),
        (
            "stages.toxicity.wordlists",
            lambda path: {"toxicity": {"enabled": True, "wordlists": {"en": path}}},
        ),
        ("stages.perplexity.model", lambda path: {"perplexity": {"enabled": True, "model": path}}),
        ("stages.langid.model", lambda path: {"langid": {"model": path}}),
        ("stages.tokenize.tokenizer", lambda path: {"tokenize": {"tokenizer": path}}),
    ],
)
def test_missing_model_list_and_tokenizer_files_are_named(capsys, tmp_path, key, stages):
    missing = tmp_path / "missing.file"
    recipe = _recipe(tmp_path, stages(str(missing)))
    status, lines = _validate(capsys, recipe)
    assert status == 2 and lines == [f"curate: error: {key}: {missing}: No such file or directory"]
    assert _validate(capsys, recipe, "--no-files")[0] == 0


def test_order_by_must_name_an_annotation(capsys, tmp_path):
    warc = [str(shared_path("crawl", "web-sample-0000.warc.gz"))]
    status, lines = _validate(capsys, _recipe(tmp_path, {"tokenize": {"order_by": "perplexty"}}, warc))
    assert status == 2 and len(lines) == 1
    assert "stages.tokenize.order_by: 'perplexty' is not an annotation" in lines[0]
    assert _validate(capsys, _recipe(tmp_path, {"tokenize": {"order_by": "lang_score"}}, warc))[0] == 0


def test_an_input_that_matches_nothing_is_named(capsys, tmp_path):
    status, lines = _validate(capsys, _recipe(tmp_path, {}, [str(tmp_path / "nothing-*.jsonl")]))
    assert status == 2 and lines == [f"curate: error: input '{tmp_path / 'nothing-*.jsonl'}' matches no file"]


def test_an_empty_output_flag_is_an_error_not_the_recipes_default(capsys, tmp_path):
    recipe = _recipe(tmp_path, {})
    status = main(["run", str(recipe), "--output", ""])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and lines == [
        "curate: error: output.path is empty: give the folder the run writes to (--output DIR)"
    ]
    assert not (tmp_path / "out").exists()

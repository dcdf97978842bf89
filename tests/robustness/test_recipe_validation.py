"""The validator refuses recipes that cannot work, and `config validate` checks what `run` checks
(issue case 10; the corrupt Parquet row group of this case is in test_damaged_inputs.py)."""

from __future__ import annotations

import pytest

from curate.cli import main


def _validate(capsys, recipe, *flags: str) -> tuple[int, list[str]]:
    status = main(["config", "validate", str(recipe), *flags])
    captured = capsys.readouterr()
    return status, (captured.err or captured.out).strip().splitlines()


@pytest.fixture
def make_recipe(tmp_path, write_recipe, shared_path):
    """`make_recipe(stages, inputs=None, output=None)`: a recipe file over a real JSONL sample."""

    def make(stages: dict, inputs: list[str] | None = None, output: str | None = None):
        inputs = inputs if inputs is not None else [str(shared_path("jsonl", "cc_en_head-0091.jsonl.gz"))]
        out = output if output is not None else tmp_path / "out"
        return write_recipe(tmp_path / "recipe.yaml", inputs, out, stages)

    return make


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
def test_settings_that_would_reject_everything_are_refused(capsys, tmp_path, stages, fragment, make_recipe):
    recipe = make_recipe(stages)
    status, lines = _validate(capsys, recipe, "--no-files")
    assert status == 2 and len(lines) == 1
    assert lines[0].startswith(f"curate: error: {recipe}: ") and fragment in lines[0]


def test_language_codes_in_other_forms_are_accepted(capsys, tmp_path, make_recipe):
    status, lines = _validate(capsys, make_recipe({"langid": {"languages": ["eng", "de", "zh"]}}))
    assert status == 0 and lines[0].endswith("files checked)")


@pytest.mark.parametrize(
    ("key", "stages"),
    [
        (
            "stages.url_filter.blocklists",
            lambda path: {"url_filter": {"enabled": True, "blocklists": [path]}},
        ),
        (
            "stages.toxicity.wordlists.en",  # the entry of a {language: file} mapping
            lambda path: {"toxicity": {"enabled": True, "wordlists": {"en": path}}},
        ),
        ("stages.perplexity.model", lambda path: {"perplexity": {"enabled": True, "model": path}}),
        ("stages.langid.model", lambda path: {"langid": {"model": path}}),
        ("stages.tokenize.tokenizer", lambda path: {"tokenize": {"tokenizer": path}}),
    ],
)
def test_missing_model_list_and_tokenizer_files_are_named(capsys, tmp_path, key, stages, make_recipe):
    missing = tmp_path / "missing.file"
    recipe = make_recipe(stages(str(missing)))
    status, lines = _validate(capsys, recipe)
    assert status == 2 and lines == [f"curate: error: {key}: {missing}: No such file or directory"]
    assert _validate(capsys, recipe, "--no-files")[0] == 0


def test_order_by_must_name_an_annotation(capsys, tmp_path, shared_path, make_recipe):
    warc = [str(shared_path("crawl", "web-sample-0000.warc.gz"))]
    status, lines = _validate(capsys, make_recipe({"tokenize": {"order_by": "perplexty"}}, warc))
    assert status == 2 and len(lines) == 1
    assert "stages.tokenize.order_by: 'perplexty' is not an annotation" in lines[0]
    assert _validate(capsys, make_recipe({"tokenize": {"order_by": "lang_score"}}, warc))[0] == 0


def test_an_input_that_matches_nothing_is_named(capsys, tmp_path, make_recipe):
    status, lines = _validate(capsys, make_recipe({}, [str(tmp_path / "nothing-*.jsonl")]))
    assert status == 2 and lines == [f"curate: error: input '{tmp_path / 'nothing-*.jsonl'}' matches no file"]


def test_an_empty_output_flag_is_an_error_not_the_recipes_default(capsys, tmp_path, make_recipe):
    recipe = make_recipe({})
    status = main(["run", str(recipe), "--output", ""])
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and lines == [
        "curate: error: output.path is empty: give the folder the run writes to (--output DIR)"
    ]
    assert not (tmp_path / "out").exists()


def test_preflight_checks_every_field_a_stage_declares_to_name_a_file(tmp_path):
    """recipe_files comes from the config fields' NamesPath markers: classifier models and the
    decontamination index are found though no list in preflight names them; disabled stages, bundled
    names, versions and the output (written, not read) are not."""
    from curate.core.config import SHAPE_ONLY
    from curate.pipelines.recipe import Config
    from curate.preflight import recipe_files

    data = {
        "input": [str(tmp_path / "in.jsonl")],
        "stages": {
            "classifier": {"enabled": True, "models": [{"name": "q", "path": str(tmp_path / "q.bin")}]},
            "decontaminate": {"enabled": True, "index": str(tmp_path / "idx.npz")},
            "toxicity": {"enabled": False, "wordlists": [str(tmp_path / "off.txt")]},
            "dedup_exact": {"against": ["web@main"]},
        },
    }
    found = recipe_files(Config.model_validate(data, context=SHAPE_ONLY))
    assert ("stages.classifier.models.path", str(tmp_path / "q.bin")) in found
    assert ("stages.decontaminate.index", str(tmp_path / "idx.npz")) in found
    assert not [path for _, path in found if "off.txt" in path or path == "gpt2" or "@" in path]

"""Hostile recipes (issue 22, items 16-18): what would hang, crash or mislead a run is refused before it
starts, with one line, and `curate config validate` refuses exactly what `curate run` refuses.
"""

from __future__ import annotations

import json
import shutil

import pytest

from curate.cli import main


def _refusal(capsys, *argv: str) -> str:
    """The one error line of a command that must refuse (exit status 2)."""
    status = main(list(argv))
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1, lines
    return lines[0]


def _both_refuse(capsys, recipe, *validate_flags: str) -> str:
    """`config validate` and `run` refuse ``recipe`` with the same line; returns it."""
    validated = _refusal(capsys, "config", "validate", str(recipe), *validate_flags)
    ran = _refusal(capsys, "run", str(recipe))
    assert validated == ran
    return validated


@pytest.fixture
def sample_jsonl(tmp_path, shared_path):
    path = tmp_path / "in" / "docs.jsonl.gz"
    path.parent.mkdir()
    shutil.copy(shared_path("jsonl", "cc_en_head-0091.jsonl.gz"), path)
    return path


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("stages:\n  langid: {enabled: true}\n  quality: {}\n  langid: {enabled: false}\n", 4, "langid"),
        ("output: a\ninput:\n  paths: [x.jsonl]\noutput: b\n", 4, "output"),
        (
            "stages:\n  quality:\n    fineweb: {line_punct_thr: 0.1, line_punct_thr: 0.9}\n",
            3,
            "line_punct_thr",
        ),
        ("runner:\n  name: direct\n  options:\n    a: 1\n    b: 2\n    a: 3\n", 6, "a"),
    ],
    ids=["stage", "top-level", "flow-mapping", "runner-option"],
)
def test_a_key_given_twice_is_refused_with_file_and_line(capsys, tmp_path, text, line, key):
    recipe = tmp_path / "twice.yaml"
    recipe.write_text(text)
    error = _refusal(capsys, "config", "validate", "--no-files", str(recipe))
    assert error.startswith(f"curate: error: {recipe}: line {line}: ") and f"duplicate key '{key}'" in error


def test_yaml_merge_keys_may_still_be_overridden(capsys, tmp_path, sample_jsonl):
    recipe = tmp_path / "merge.yaml"
    recipe.write_text(
        "defaults: &fast {shard_tokens: 100000, seed: 1}\n"
        f"input: {{paths: [{sample_jsonl}]}}\noutput: {tmp_path / 'out'}\n"
        "stages:\n  tokenize:\n    <<: *fast\n    seed: 2\n"
    )
    # a merge key is no duplicate: only the unknown top-level 'defaults' is refused
    assert "defaults: unknown key" in _refusal(capsys, "config", "validate", str(recipe))


@pytest.mark.parametrize(
    ("stages", "runner", "fragment"),
    [
        ({"dedup_minhash": {"num_perm": 100_000_000}}, {}, "num_perm: Input should be less than or equal"),
        ({"dedup_minhash": {"bands": 10**7, "rows": 1}}, {}, "bands: Input should be less than or equal"),
        ({"dedup_minhash": {"ngram": 100_000}}, {}, "ngram: Input should be less than or equal"),
        ({"decontaminate": {"enabled": True, "ngram": 10**6}}, {}, "ngram: Input should be less than"),
        ({"quality": {"batch_size": 10**9}}, {}, "batch_size: Input should be less than or equal"),
        ({"tokenize": {"train": {"vocab_size": 10**9}}}, {}, "vocab_size: Input should be less than"),
        ({}, {"workers": 1_000_000}, "workers: Input should be less than or equal"),
        ({"quality": {"fineweb": {"line_punct_thr": "nan"}}}, {}, "line_punct_thr: Input should be a finite"),
        ({"mixing": {"enabled": True, "weights": {"en": "nan"}}}, {}, "weights.en: Input should be a finite"),
        ({"mixing": {"enabled": True, "weights": {"en": "inf"}}}, {}, "weights.en: Input should be a finite"),
        ({"mixing": {"enabled": True, "max_epochs": "inf"}}, {}, "max_epochs: Input should be a finite"),
    ],
)
def test_values_that_would_hang_or_crash_a_run_are_refused(
    capsys, tmp_path, write_recipe, sample_jsonl, stages, runner, fragment
):
    recipe = write_recipe(tmp_path / "r.yaml", [str(sample_jsonl)], tmp_path / "out", stages)
    if runner:
        data = json.loads(recipe.read_text())
        data["runner"].update(runner)
        recipe.write_text(json.dumps(data))
    error = _both_refuse(capsys, recipe, "--no-files")
    assert error.startswith(f"curate: error: {recipe}: ") and fragment in error


def test_yaml_nan_and_infinity_are_refused(capsys, tmp_path):
    recipe = tmp_path / "nan.yaml"
    recipe.write_text("stages:\n  quality:\n    gopher_quality: {max_symbol_word_ratio: .inf}\n")
    assert "Input should be a finite number" in _refusal(
        capsys, "config", "validate", "--no-files", str(recipe)
    )


def test_an_empty_recipe_is_refused_by_validate_as_by_run(capsys, tmp_path):
    recipe = tmp_path / "empty.yaml"
    recipe.write_text("# nothing here\n")
    assert "input.paths: no input given" in _both_refuse(capsys, recipe)


@pytest.mark.parametrize(
    "content",
    [b'{"id": 1, "text": "valid JSON, no tokenizer"}', b"\x00\x01binary", b"", b"[]"],
    ids=["json", "binary", "empty", "json-list"],
)
def test_a_tokenizer_file_that_is_no_tokenizer_is_refused_by_validate_as_by_run(
    capsys, tmp_path, write_recipe, sample_jsonl, content
):
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_bytes(content)
    stages = {"tokenize": {"tokenizer": str(tokenizer), "shard_tokens": 100_000}}
    recipe = write_recipe(tmp_path / "r.yaml", [str(sample_jsonl)], tmp_path / "out", stages)
    assert "cannot load tokenizer" in _both_refuse(capsys, recipe)


@pytest.mark.parametrize("input_kind", ["jsonl", "warc"])
def test_an_unknown_order_by_is_refused_by_validate_as_by_run(
    capsys, tmp_path, write_recipe, sample_jsonl, shared_path, input_kind
):
    source = (
        str(sample_jsonl) if input_kind == "jsonl" else str(shared_path("crawl", "web-sample-0000.warc.gz"))
    )
    stages = {"tokenize": {"order_by": "no_such_field", "shard_tokens": 100_000}}
    recipe = write_recipe(tmp_path / "r.yaml", [source], tmp_path / "out", stages)
    assert "order_by: 'no_such_field' is not an annotation" in _both_refuse(capsys, recipe)


def test_order_by_may_name_a_field_of_the_input(capsys, tmp_path, write_recipe, sample_jsonl):
    stages = {"tokenize": {"order_by": "added", "shard_tokens": 100_000}}  # a field of the CCNet rows
    recipe = write_recipe(tmp_path / "r.yaml", [str(sample_jsonl)], tmp_path / "out", stages)
    assert main(["config", "validate", str(recipe)]) == 0


@pytest.mark.parametrize(
    ("pattern", "output"),
    [("{root}/*/*.jsonl.gz", "{root}/out"), ("{root}/**", "{root}/out/"), ("{root}/out/*", "{root}/./out")],
    ids=["glob", "recursive", "same-folder"],
)
def test_an_input_glob_that_reaches_the_output_folder_is_refused(
    capsys, tmp_path, write_recipe, sample_jsonl, pattern, output
):
    root = sample_jsonl.parent.parent
    previous = root / "out" / "documents.jsonl.gz"  # what an earlier run left in its output
    previous.parent.mkdir()
    shutil.copy(sample_jsonl, previous)
    recipe = write_recipe(tmp_path / "r.yaml", [pattern.format(root=root)], output.format(root=root))
    error = _both_refuse(capsys, recipe)
    assert "inside the run's output folder" in error and str(previous) in error


def test_an_input_glob_beside_the_output_folder_is_accepted(capsys, tmp_path, write_recipe, sample_jsonl):
    (sample_jsonl.parent.parent / "out").mkdir()
    pattern = str(sample_jsonl.parent / "*.jsonl.gz")
    recipe = write_recipe(tmp_path / "r.yaml", [pattern], sample_jsonl.parent.parent / "out")
    assert main(["config", "validate", str(recipe)]) == 0

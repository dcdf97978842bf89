"""The recipe: defaults, one-line errors naming the key, and command-line overrides."""

from __future__ import annotations

import argparse
import re

import pytest
import yaml

from curate.cli import main
from curate.cli.run_cmd import apply_overrides
from curate.config import ConfigError, config_to_yaml, default_config, load_config, parse_config
from curate.pipelines.stage_order import ALL_STAGES


def test_default_recipe_has_every_declared_stage_in_pipeline_order_with_enabled_flag():
    dumped = default_config().model_dump()
    assert list(dumped["stages"]) == [stage.name for stage in ALL_STAGES]
    assert all("enabled" in stage for stage in dumped["stages"].values())


def test_stage_names_are_distinct_recipe_keys():
    names = [stage.name for stage in ALL_STAGES]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in names)


@pytest.mark.parametrize("stage", ALL_STAGES, ids=lambda stage: stage.name)
def test_declared_thresholds_name_numbers_in_the_stage_config(stage):
    """What the report draws as a signal's threshold is a key of its stage's config (a renamed field
    would silently drop the line from the charts)."""
    config = stage.config().model_dump()
    for signal in stage.signals:
        for dotted in signal.thresholds:
            node = config
            for key in dotted.split("."):
                assert isinstance(node, dict) and key in node, f"{stage.name}: {signal.name}: {dotted}"
                node = node[key]
            assert node is None or isinstance(node, int | float), f"{stage.name}.{dotted} = {node!r}"


def test_default_recipe_round_trips_through_yaml():
    text = config_to_yaml(default_config())
    assert parse_config(yaml.safe_load(text)) == default_config()


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("stages:\n  langid:\n    min_scor: 0.5\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: stages.langid.min_scor:")
    assert message.endswith("unknown key; did you mean 'min_score'?")


def test_an_unknown_key_with_no_close_match_lists_the_known_ones(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("stages:\n  classifier:\n    models: [{name: q, path: m.bin, colour: red}]\n")
    with pytest.raises(
        ConfigError, match=r"models\.0\.colour: unknown key \(known: name, path, positive_label"
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("recipe", "error"),
    [
        pytest.param(
            "stages:\n  langid:\n    min_score: 1.5\n",
            r"stages\.langid\.min_score: Input should be less than or equal to 1",
            id="out-of-range-threshold-is-named",
        ),
        pytest.param(
            "stages:\n  langid: [\n", r"bad\.yaml: line \d+: invalid YAML", id="invalid-yaml-names-the-line"
        ),
    ],
)
def test_bad_recipe_file_error_names_the_key_or_line(tmp_path, recipe, error):
    path = tmp_path / "bad.yaml"
    path.write_text(recipe)
    with pytest.raises(ConfigError, match=error):
        load_config(path)


def test_portable_runner_needs_an_endpoint():
    with pytest.raises(ConfigError, match="runner: runner 'portable' needs job_endpoint"):
        parse_config({"runner": {"name": "portable"}})


def test_input_and_output_shorthands():
    config = parse_config({"input": "a/*.warc.gz", "output": "out"})
    assert config.input.paths == ["a/*.warc.gz"]
    assert config.output.path == "out"


def test_command_line_overrides_are_validated(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("input: x.jsonl\n")
    args = argparse.Namespace(
        config=str(path), input=["y.jsonl"], output="o", runner="direct", workers=0, job_endpoint=None
    )
    with pytest.raises(ConfigError, match=r"runner\.workers: Input should be greater than or equal to 1"):
        apply_overrides(load_config(path), args)


def test_cli_validate_reports_error_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("stages:\n  tokenize:\n    batch_size: -1\n")
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "stages.tokenize.batch_size" in err


def test_cli_show_prints_valid_yaml(capsys):
    assert main(["config", "show"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["stages"]["langid"]["min_score"] == 0.65

"""Every failure a user can cause is one line on the console and exit status 2 (issue case 9)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow


def _one_line_error(result, *fragments: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _three_lines(damaged_inputs) -> str:
    inputs, _ = damaged_inputs
    return str(inputs["three.jsonl"].path)


def test_an_output_path_that_is_a_file(damaged_inputs, tmp_path, curate_cli, write_recipe):
    out = tmp_path / "out"
    out.write_text("not a folder")
    recipe = write_recipe(tmp_path / "r.yaml", [_three_lines(damaged_inputs)], out)
    _one_line_error(curate_cli("run", str(recipe)), f"output.path: {out} is a file")
    assert out.read_text() == "not a folder"


def test_an_output_path_that_cannot_be_created(damaged_inputs, tmp_path, curate_cli, write_recipe):
    (tmp_path / "plain-file").write_text("x")
    out = tmp_path / "plain-file" / "out"
    recipe = write_recipe(tmp_path / "r.yaml", [_three_lines(damaged_inputs)], out)
    _one_line_error(curate_cli("run", str(recipe)), f"output.path: {out} cannot be created")


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MB filesystem: the run's tokenizer alone (1.5 MB) does not fit."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("needs permission to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk(damaged_inputs, full_disk, tmp_path, curate_cli, write_recipe):
    out = full_disk / "out"
    recipe = write_recipe(tmp_path / "r.yaml", [_three_lines(damaged_inputs)], out)
    _one_line_error(
        curate_cli("run", str(recipe), "--quiet"),
        f"No space left on device while writing under {out}",  # the full folder, with the space left
        "MB free",
        str(out / "run.log"),
    )
    assert sorted(p.name for p in out.iterdir()) == ["run.log"]  # the staged part was cleaned up


def test_training_on_a_run_that_kept_nothing(damaged_inputs, tmp_path, curate_cli, write_recipe):
    out = tmp_path / "out"
    stages = {"langid": {"languages": ["fr"]}, "tokenize": {"shard_tokens": 200_000}}
    recipe = write_recipe(tmp_path / "r.yaml", [_three_lines(damaged_inputs)], out, stages)
    assert curate_cli("run", str(recipe), "--quiet").returncode == 0
    assert json.loads((out / "stats.json").read_text())["documents_kept"] == 0
    result = curate_cli("train", "--data", str(out), "--preset", "tiny", "--steps", "1", "--device", "cpu",
                    "--output", str(tmp_path / "train"))  # fmt: skip
    _one_line_error(result, str(out), "the run kept none")


def test_a_manifest_without_its_tokenizer_key(damaged_run, tmp_path, curate_cli):
    out = tmp_path / "out"
    shutil.copytree(damaged_run.out, out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["tokenizer"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    for command in (("shards", "verify", str(out)), ("shards", "inspect", str(out))):
        _one_line_error(
            curate_cli(*command), f"{out / 'manifest.json'}: missing or malformed key 'tokenizer'"
        )
    result = curate_cli("train", "--data", str(out), "--preset", "tiny", "--steps", "1", "--device", "cpu",
                    "--output", str(tmp_path / "train"))  # fmt: skip
    _one_line_error(result, f"{out / 'manifest.json'}: missing or malformed key 'tokenizer'")

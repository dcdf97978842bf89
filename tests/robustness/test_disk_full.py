"""A full disk is named (issue 22, item 21): "No space left on device" says which folder, and how much
space is left there, whether the error came from a worker (as text, without a path) or from curate."""

from __future__ import annotations

import errno
import shutil

import pytest

import curate.run
from curate.cli import main
from curate.core.files import disk_full_line


@pytest.fixture
def recipe(tmp_path, write_recipe, shared_path):
    source = tmp_path / "docs.jsonl.gz"
    shutil.copy(shared_path("jsonl", "cc_en_head-0174.jsonl.gz"), source)
    return write_recipe(tmp_path / "r.yaml", [str(source)], tmp_path / "deep" / "out")


def _error_line(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    return line


def test_a_worker_that_runs_out_of_space_names_the_output_folder(capsys, monkeypatch, recipe, tmp_path):
    def full(*args, **kwargs):  # what Beam hands back when a worker's pyarrow write hits ENOSPC
        raise RuntimeError(
            "OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device "
            "[while running 'WriteShards/Write']"
        )

    monkeypatch.setattr(curate.run.curation, "build", full)  # raised inside the running pipeline's guard
    line = _error_line(capsys, "run", str(recipe), "--quiet")
    assert line.startswith("curate: error: No space left on device while writing under ")
    assert str(tmp_path / "deep" / "out") in line and "MB free)" in line


def test_an_os_error_without_a_path_names_the_output_folder(capsys, monkeypatch, recipe, tmp_path):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")  # a write() on an open file: no filename

    monkeypatch.setattr(curate.run, "run", full)
    out = tmp_path / "elsewhere"
    line = _error_line(capsys, "run", str(recipe), "--output", str(out))
    assert f"No space left on device while writing under {out} (" in line


def test_each_filesystem_is_named_once_and_other_errors_are_left_alone(tmp_path):
    line = disk_full_line("[Errno 28] No space left on device", [str(tmp_path / "a"), str(tmp_path / "b")])
    assert line is not None and line.count("MB free") == 1 and str(tmp_path / "a") in line
    assert disk_full_line("[Errno 13] Permission denied", [str(tmp_path)]) is None
    assert "gs://bucket/out" in disk_full_line("No space left on device", ["gs://bucket/out"])

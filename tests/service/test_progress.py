"""Progress of a running job, from the counter files the workers write (pipelines/progress.py format)."""

from __future__ import annotations

import json
from pathlib import Path

from curate.pipelines.progress_files import PLAN_FILE
from curate.service.progress import run_progress, train_series


def _worker_file(directory: Path, name: str, read: int, done_bytes: int, stages: dict[str, tuple[int, int]]):
    counts = {"read": read, "kept": 0, "bytes": done_bytes,
              "stages": {s: {"out": o, "rejected": r} for s, (o, r) in stages.items()}}  # fmt: skip
    (directory / f"host-{name}.json").write_text(json.dumps(counts))


def test_mid_run_fractions_and_eta(tmp_path: Path):
    (tmp_path / PLAN_FILE).write_text(json.dumps({"stages": ["read", "quality", "tokenize"], "files": 4}))
    # Two processes; half of the 1,000 input bytes read, in which the readers met 100 records.
    _worker_file(tmp_path, "1", 60, 300, {"read": (50, 0), "quality": (20, 20)})
    _worker_file(tmp_path, "2", 40, 200, {"read": (30, 0), "quality": (10, 10)})
    progress = run_progress(tmp_path, total_bytes=1000, elapsed=30.0)
    stages = {s["stage"]: s for s in progress["stages"]}
    assert [s["stage"] for s in progress["stages"]] == ["read", "quality", "tokenize"]
    assert (stages["read"]["in"], stages["read"]["out"]) == (80, 80)
    assert (stages["quality"]["in"], stages["quality"]["out"], stages["quality"]["rejected"]) == (60, 30, 30)
    # 100 records per 500 bytes -> 200 expected; quality has seen 60 of the 200 that pass read.
    assert stages["read"]["fraction"] == 0.4 and stages["quality"]["fraction"] == 0.3
    assert stages["tokenize"]["fraction"] == 0.0 and stages["quality"]["rate"] == 2.0
    assert progress["fraction"] == round((0.4 + 0.3 + 0.0) / 3, 4)
    assert progress["eta_s"] == round(30 * (1 - progress["fraction"]) / progress["fraction"], 1)
    assert progress["input_bytes_read"] == 500


def test_nothing_estimated_before_a_file_is_read(tmp_path: Path):
    _worker_file(tmp_path, "1", 10, 0, {"read": (5, 0)})
    (tmp_path / "host-2.json").write_text("{not json")  # a file being replaced: skipped, not fatal
    progress = run_progress(tmp_path, total_bytes=1000, elapsed=5.0)
    assert progress["fraction"] == 0.0 and progress["eta_s"] is None
    assert progress["stages"][0]["in"] == 5


def test_train_series_skips_a_partial_last_line(tmp_path: Path):
    lines = [
        {"step": 1, "loss": 10.5, "tokens_per_s": 100.0},
        {"step": 2, "loss": 10.1, "tokens_per_s": 110.0, "eval_loss": 10.3},
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 3, "lo')
    series = train_series(tmp_path)
    assert series == {"step": [1, 2], "loss": [10.5, 10.1], "tokens_per_s": [100.0, 110.0],
                      "eval_step": [2], "eval_loss": [10.3], "tasks": {}}  # fmt: skip

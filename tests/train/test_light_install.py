"""`curate[train]` without the pipeline's stack: `curate train` (CLI, checkpoint, resume) in a real venv
where apache_beam, fastText and the other pipeline packages are not installed (tools/light_env.py; built
once by `make light-env`, which `make test` runs, under ~/.cache/curate; this test reinstalls only the
curate wheel from the checkout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIGHT_ENV = Path(os.environ.get("CURATE_LIGHT_ENV", Path.home() / ".cache" / "curate" / "train-light-venv"))


@pytest.fixture(scope="module")
def light_python() -> Path:
    pytest.importorskip("torch", reason="needs the train extra: pip install -e '.[train]'")
    refresh = ["--refresh-curate"] if (LIGHT_ENV / "bin" / "python").exists() else []
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "light_env.py"), str(LIGHT_ENV), *refresh], check=True
    )
    return LIGHT_ENV / "bin" / "python"


def test_the_light_environment_cannot_import_the_pipeline_stack(light_python: Path):
    for module in ("apache_beam", "fasttext", "trafilatura", "boto3"):
        probe = subprocess.run([str(light_python), "-c", f"import {module}"], capture_output=True)
        assert probe.returncode != 0, f"{module} imports in the light environment"


def test_curate_train_checkpoints_and_resumes_without_beam(
    light_python: Path, shard_dir: Path, tmp_path: Path
):
    out = tmp_path / "run"
    curate = [str(light_python), "-m", "curate", "train", "--data", str(shard_dir), "--preset", "tiny"]
    common = ["--device", "cpu", "--output", str(out), "--batch-size", "2", "--seq-len", "32"]
    common += ["--log-every", "1", "--threads", "1", "--eval-every", "0"]
    env = {**os.environ, "PYTHONPATH": ""}
    first = subprocess.run(
        [*curate, "--steps", "4", "--stop-at", "2", *common],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000002.pt"
    second = subprocess.run(
        [*curate, "--steps", "4", "--resume", *common], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert second.returncode == 0, second.stderr
    logged = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [record["step"] for record in logged if "loss" in record] == [1, 2, 3, 4]
    assert "apache_beam" not in first.stderr + second.stderr


def test_curate_train_reads_s3_through_pyarrow_without_beam(
    light_python: Path, shard_dir: Path, s3_server: str, tmp_path: Path
):
    """No Beam: the shards on an S3 API server (moto) are read through pyarrow's S3 filesystem."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    for path in sorted(p for p in shard_dir.rglob("*") if p.is_file()):
        client.upload_file(str(path), "datasets", f"light-train/{path.relative_to(shard_dir).as_posix()}")
    out = tmp_path / "run"
    command = [str(light_python), "-m", "curate", "train", "--data", "s3://datasets/light-train"]
    command += ["--preset", "tiny", "--steps", "2", "--device", "cpu", "--output", str(out), "--threads", "1"]
    command += ["--batch-size", "2", "--seq-len", "32", "--eval-every", "0", "--s3-endpoint-url", s3_server]
    env = {**os.environ, "PYTHONPATH": "", "AWS_REGION": "us-east-1"}
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [record["step"] for record in logged if "loss" in record][-1] == 2

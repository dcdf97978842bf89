"""A whole run with its input and output on real object-store servers: S3 (moto's server mode) and GCS
(gcp-storage-emulator), both on 127.0.0.1, through Beam's own S3 and GCS filesystems. The shards must be
byte-identical to a local run's; `curate shards verify/inspect` and `curate train --data` read them in
place. One local run and one run per store serve every test here (small input, one worker)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.run import run
from tests.conftest import shared_path

pytestmark = pytest.mark.slow

KEYS = {"AWS_ACCESS_KEY_ID": "curate-test-key", "AWS_SECRET_ACCESS_KEY": "curate-test-secret"}
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


def _inputs() -> list[Path]:
    return [shared_path("crawl", "web-sample-0000.warc.gz"), shared_path("jsonl", "cc_en_head-0174.jsonl.gz")]


def _recipe(inputs: list[str], out: str, **extra) -> dict:
    return {
        "input": inputs,
        "output": out,
        "runner": {"name": "direct", "workers": 1},
        "stages": {"tokenize": {"shard_tokens": 20_000}},
        **extra,
    }


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    run(parse_config(_recipe([str(p) for p in _inputs()], str(out))), progress=False)
    return {
        Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()
        for p in sorted(glob.glob(str(out / "shards" / "*.parquet")))
    }


@pytest.fixture(scope="module")
def s3_server():
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = {key: os.environ.get(key) for key in KEYS}
    os.environ.update(KEYS)
    try:
        _wait_for(port, server)
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="crawl")
        client.create_bucket(Bucket="datasets")
        for path in _inputs():
            client.upload_file(str(path), "crawl", f"in/{path.name}")
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def s3_run(s3_server, local_run):
    recipe = _recipe(
        ["s3://crawl/in/*.warc.gz", "s3://crawl/in/*.jsonl.gz"],
        "s3://datasets/web-en",
        storage={"s3_endpoint_url": s3_server, "s3_region": "us-east-1"},
    )
    summary = run(parse_config(recipe), progress=False)
    return summary


def _listing(client, bucket: str, prefix: str) -> dict[str, bytes]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_s3_run_writes_every_output_and_the_same_shards(s3_server, s3_run, local_run):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    objects = _listing(client, "datasets", "web-en/")
    names = {key.removeprefix("web-en/") for key in objects}
    for name in ("stats.json", "manifest.json", "tokenizer.json"):
        assert name in names
    for sub in ("documents/", "rejected/", "shards/"):
        assert any(n.startswith(sub) and n.endswith(".parquet") for n in names), sub
    assert not any(n.startswith(".work") for n in names)  # the run's scratch space is gone
    shards = {
        key.rsplit("/", 1)[-1]: hashlib.sha256(data).hexdigest()
        for key, data in objects.items()
        if key.startswith("web-en/shards/")
    }
    assert shards == local_run != {}
    stats = json.loads(objects["web-en/stats.json"])
    assert stats["balanced"] and stats["documents_read"] == s3_run.documents_read > 0
    manifest = json.loads(objects["web-en/manifest.json"])
    assert {s["path"].rsplit("/", 1)[-1]: s["sha256"] for s in manifest["shards"]} == local_run
    # Credentials come from the environment and are written nowhere.
    for key, data in objects.items():
        if key.endswith((".json", ".log")):
            assert KEYS["AWS_SECRET_ACCESS_KEY"].encode() not in data, key


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "curate", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def test_shards_verify_and_inspect_read_from_s3(s3_server, s3_run):
    verified = _cli("shards", "verify", "s3://datasets/web-en", "--s3-endpoint-url", s3_server)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ok (checksums, schema, EOS, counts, decode round-trip)" in verified.stdout
    # boto3's own variable works as well as the flag.
    inspected = _cli("shards", "inspect", "s3://datasets/web-en", "--json", env={"AWS_ENDPOINT_URL_S3": s3_server})
    assert inspected.returncode == 0, inspected.stderr
    report = json.loads(inspected.stdout)
    assert report["total_tokens"] == s3_run.tokens and report["samples"]


def test_verify_finds_a_damaged_shard_on_s3(s3_server, s3_run):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    manifest = json.loads(client.get_object(Bucket="datasets", Key="web-en/manifest.json")["Body"].read())
    key = f"web-en/{manifest['shards'][0]['path']}"
    original = client.get_object(Bucket="datasets", Key=key)["Body"].read()
    client.put_object(Bucket="datasets", Key=key, Body=original[:-10] + b"0123456789")
    try:
        result = _cli("shards", "verify", "s3://datasets/web-en", "--s3-endpoint-url", s3_server)
    finally:
        client.put_object(Bucket="datasets", Key=key, Body=original)
    assert result.returncode == 1 and "sha256 differs" in result.stdout


def test_train_reads_shards_from_s3(s3_server, s3_run, tmp_path):
    pytest.importorskip("torch")
    result = _cli(
        "train", "--data", "s3://datasets/web-en", "--preset", "tiny", "--steps", "2", "--device", "cpu",
        "--eval-every", "0", "--log-every", "1", "--output", str(tmp_path / "train"),
        "--s3-endpoint-url", s3_server,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    steps = [json.loads(line) for line in (tmp_path / "train" / "train.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s][-1] == 2


def test_secrets_in_a_recipe_are_refused():
    recipe = _recipe(["s3://crawl/in/*"], "s3://datasets/x")
    recipe["runner"]["options"] = {"s3_secret_access_key": "abc"}
    with pytest.raises(CurateError, match="s3_secret_access_key must not be in a recipe.*AWS_SECRET_ACCESS_KEY"):
        parse_config(recipe)


# ------------------------------------------------------------------------------------------------ GCS


@pytest.fixture(scope="module")
def gcs_server():
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        _wait_for(port, server)
        from google.cloud import storage

        client = storage.Client.create_anonymous_client()
        client.create_bucket("crawl-gcs")
        client.create_bucket("datasets-gcs")
        for path in _inputs():
            client.bucket("crawl-gcs").blob(f"in/{path.name}").upload_from_filename(str(path))
        yield client
    finally:
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
        server.terminate()
        server.wait(timeout=30)


def test_gcs_run_gives_the_same_shards(gcs_server, local_run):
    recipe = _recipe(["gs://crawl-gcs/in/*.warc.gz", "gs://crawl-gcs/in/*.jsonl.gz"], "gs://datasets-gcs/web-en")
    summary = run(parse_config(recipe), progress=False)
    blobs = {b.name: b for b in gcs_server.list_blobs("datasets-gcs", prefix="web-en/")}
    names = {name.removeprefix("web-en/") for name in blobs}
    assert {"stats.json", "manifest.json", "tokenizer.json"} <= names
    assert not any(n.startswith(".work") for n in names)
    shards = {
        name.rsplit("/", 1)[-1]: hashlib.sha256(blob.download_as_bytes()).hexdigest()
        for name, blob in blobs.items()
        if name.startswith("web-en/shards/")
    }
    assert shards == local_run != {}
    assert summary.stats["balanced"]
    verified = _cli("shards", "verify", "gs://datasets-gcs/web-en")
    assert verified.returncode == 0, verified.stdout + verified.stderr

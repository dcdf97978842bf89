"""A whole run with its input and output on real object-store servers: S3 (moto's server mode) and GCS
(gcp-storage-emulator), both on 127.0.0.1, through Beam's own S3 and GCS filesystems. The shards must be
byte-identical to a local run's; `curate shards verify/inspect` and `curate train --data` read them in
place. One local run and one run per store serve every test here (small input, one worker)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from curate.config import parse_config
from curate.core.errors import CurateError
from curate.run import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def s3_run(s3_server, reference_shards, servers):
    recipe = servers.small_recipe(
        ["s3://crawl/in/*.warc.gz", "s3://crawl/in/*.jsonl.gz"],
        "s3://datasets/web-en",
        storage={"s3_endpoint_url": s3_server, "s3_region": "us-east-1"},
    )
    return run(parse_config(recipe), progress=False)


def test_s3_run_writes_every_output_and_the_same_shards(s3_server, s3_run, reference_shards, servers):
    objects = servers.s3_objects(s3_server, "datasets", "web-en/")
    names = {key.removeprefix("web-en/") for key in objects}
    for name in ("stats.json", "manifest.json", "tokenizer.json"):
        assert name in names
    for sub in ("documents/", "rejected/", "shards/"):
        assert any(n.startswith(sub) and n.endswith(".parquet") for n in names), sub
    assert not any(n.startswith(".work") for n in names)  # the run's scratch space is gone
    assert servers.shard_digests_in(objects) == reference_shards != {}
    stats = json.loads(objects["web-en/stats.json"])
    assert stats["balanced"] and stats["documents_read"] == s3_run.documents_read > 0
    manifest = json.loads(objects["web-en/manifest.json"])
    assert {s["path"].rsplit("/", 1)[-1]: s["sha256"] for s in manifest["shards"]} == reference_shards
    # Credentials come from the environment and are written nowhere.
    for key, data in objects.items():
        if key.endswith((".json", ".log")):
            assert servers.keys["AWS_SECRET_ACCESS_KEY"].encode() not in data, key


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
    endpoint = {"AWS_ENDPOINT_URL_S3": s3_server}
    inspected = _cli("shards", "inspect", "s3://datasets/web-en", "--json", env=endpoint)
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


def test_secrets_in_a_recipe_are_refused(servers):
    recipe = servers.small_recipe(["s3://crawl/in/*"], "s3://datasets/x")
    recipe["runner"]["options"] = {"s3_secret_access_key": "abc"}
    expected = "s3_secret_access_key must not be in a recipe.*AWS_SECRET_ACCESS_KEY"
    with pytest.raises(CurateError, match=expected):
        parse_config(recipe)


# ------------------------------------------------------------------------------------------------ GCS


@pytest.fixture(scope="module")
def gcs_server(servers):
    port = servers.free_port()
    server = subprocess.Popen(
        [str(servers.bin / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port)]
        + ["--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        servers.wait_for_port(port, server)
        from google.cloud import storage

        client = storage.Client.create_anonymous_client()
        client.create_bucket("crawl-gcs")
        client.create_bucket("datasets-gcs")
        for path in servers.small_inputs():
            client.bucket("crawl-gcs").blob(f"in/{path.name}").upload_from_filename(str(path))
        yield client
    finally:
        if saved is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
        server.terminate()
        server.wait(timeout=30)


def test_gcs_run_gives_the_same_shards(gcs_server, reference_shards, servers):
    recipe = servers.small_recipe(
        ["gs://crawl-gcs/in/*.warc.gz", "gs://crawl-gcs/in/*.jsonl.gz"], "gs://datasets-gcs/web-en"
    )
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
    assert shards == reference_shards != {}
    assert summary.stats["balanced"]
    verified = _cli("shards", "verify", "gs://datasets-gcs/web-en")
    assert verified.returncode == 0, verified.stdout + verified.stderr

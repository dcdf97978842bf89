"""Shared fixtures: the real sample data in ../shared, and a fast single-process runner setting."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the test when ../shared is absent (never in CI: it fails)."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must run with ../shared beside the checkout")
        pytest.skip(f"needs the sample data at {path} (the ../shared folder beside the checkout)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


# ------------------------------------------------------------------ real servers and a reference run
# Object-store and runner tests compare against one local run of the same small input, and share one
# S3 server (moto's server mode, a real HTTP S3 API on 127.0.0.1) for the whole session.

S3_KEYS = {"AWS_ACCESS_KEY_ID": "curate-test-key", "AWS_SECRET_ACCESS_KEY": "curate-test-secret"}
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} (port {port}) exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{process.args[0]} did not listen on port {port} within {seconds} s")


def small_inputs() -> list[Path]:
    """One real WARC and one real JSONL file: every reader path, in a run of about a minute."""
    return [shared_path("crawl", "web-sample-0000.warc.gz"), shared_path("jsonl", "cc_en_head-0174.jsonl.gz")]


def small_recipe(inputs: list[str], out: str, **extra) -> dict:
    return {
        "input": inputs,
        "output": out,
        "runner": {"name": "direct", "workers": 1},
        "stages": {"tokenize": {"shard_tokens": 20_000}},
        **extra,
    }


def shard_digests(folder: Path) -> dict[str, str]:
    shards = sorted(folder.glob("shards/*.parquet"))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shards}


@pytest.fixture(scope="session")
def reference_shards(tmp_path_factory) -> dict[str, str]:
    """Shard name -> sha256 of a local run of `small_inputs` with `small_recipe`."""
    from curate.config import parse_config
    from curate.run import run

    out = tmp_path_factory.mktemp("reference") / "out"
    run(parse_config(small_recipe([str(p) for p in small_inputs()], str(out))), progress=False)
    return shard_digests(out)


@pytest.fixture(scope="session")
def s3_server():
    """``http://127.0.0.1:PORT`` of a moto S3 server holding bucket ``crawl`` (the small inputs under
    ``in/``) and an empty bucket ``datasets``; its credentials are in this process's environment."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = {key: os.environ.get(key) for key in S3_KEYS}
    os.environ.update(S3_KEYS)
    try:
        wait_for_port(port, server)
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="crawl")
        client.create_bucket(Bucket="datasets")
        for path in small_inputs():
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


def s3_objects(endpoint: str, bucket: str, prefix: str) -> dict[str, bytes]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def shard_digests_in(objects: dict[str, bytes]) -> dict[str, str]:
    return {
        key.rsplit("/", 1)[-1]: hashlib.sha256(data).hexdigest()
        for key, data in objects.items()
        if "/shards/" in key and key.endswith(".parquet")
    }

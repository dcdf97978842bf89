#!/usr/bin/env python3
"""Committing a run's output that lies on S3: peak memory of the committing process, and the bytes that
pass through it, for each way a version can take the files.

A moto S3 server (real S3 API on 127.0.0.1) holds an output folder with one shard of S MB for each
--sizes-mb S (manifest with its sha256 and size). Each commit runs in a fresh process whose peak RSS
(ru_maxrss) is read; a real lakeFS server (tests/support/lakefs_server.py, built by `make lakefs-server`)
runs in another process with the same S3 server as its S3 blockstore:

- embedded: the embedded store streams each object in through Beam's S3 filesystem (hash while copying);
- lakefs-upload: lakeFS may not import the folder, so each object is streamed from S3 into the upload;
- lakefs-import: the folder is under CURATE_LAKEFS_IMPORT_FROM, so lakeFS imports it in place;
- import-only: the same process importing the backends and doing nothing (the floor).

"shard GETs" counts the GetObject requests for the shard that the S3 server received during the commit
(moto's request recorder, from any client: curate and the lakeFS server), so an import that reads no
shard shows 0 (not counted for lakefs-upload, whose uploads moto would record whole).
Usage: python -m bench.commit_from_s3 [--sizes-mb 64 256] ; writes bench/results/commit_from_s3.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.results_file import write_results
from tests.support.lakefs_server import LakeFSServer, S3Blockstore

HERE = Path(__file__).resolve().parent
S3_KEYS = {"AWS_ACCESS_KEY_ID": "bench-key", "AWS_SECRET_ACCESS_KEY": "bench-secret"}

_CHILD = r"""
import json, os, resource, sys, time
mode, folder, store, endpoint, s3 = sys.argv[1:6]
from curate.object_store import configure
from curate.pipelines.runner import StorageConfig
from curate.versions.embedded import EmbeddedRepository, LocalStore
from curate.versions.lakefs import Credentials, LakeFSRepository
import lakefs_sdk, urllib3
configure(StorageConfig(s3_endpoint_url=s3, s3_region="us-east-1"))
started = time.perf_counter()
transfer = {}
if mode == "embedded":
    EmbeddedRepository("bench", LocalStore(store)).commit_output(folder, "main", "bench")
elif mode.startswith("lakefs"):
    repository = LakeFSRepository("bench", Credentials(endpoint, os.environ["LK"], os.environ["LS"]))
    repository.commit_output(folder, "main", "bench")
    transfer = repository.last_transfer
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_rss_mb": peak, "seconds": seconds, "transfer": transfer}))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _recorder(s3: str, action: str) -> bytes:
    method_data = None if action == "download-recording" else b""
    with urllib.request.urlopen(f"{s3}/moto-api/recorder/{action}", data=method_data) as response:
        return response.read()


def make_output(client, size_mb: int) -> str:
    """s3://datasets/out-S/ with one shard of S MB, manifest and stats; returns the folder."""
    prefix = f"out-{size_mb}"
    digest, block = hashlib.sha256(), hashlib.sha256(b"curate").digest() * (1 << 15)  # 1 MB
    path = Path(f"/tmp/curate-bench-s3-shard-{size_mb}")
    with open(path, "wb") as handle:
        for index in range(size_mb):
            chunk = index.to_bytes(8, "little") + block[8:]
            handle.write(chunk)
            digest.update(chunk)
    shard = "shards/shard-00000.parquet"
    client.upload_file(str(path), "datasets", f"{prefix}/{shard}")
    path.unlink()
    manifest = {"shards": [{"path": shard, "sha256": digest.hexdigest(), "bytes": size_mb << 20}]}
    client.put_object(Bucket="datasets", Key=f"{prefix}/manifest.json", Body=json.dumps(manifest).encode())
    client.put_object(Bucket="datasets", Key=f"{prefix}/stats.json", Body=b'{"documents_kept": 1}')
    return f"s3://datasets/{prefix}"


def measure(mode: str, folder: str, store: Path, endpoint: str, s3: str, env: dict) -> dict:
    # moto records request bodies too: not while lakeFS uploads (its PUTs would fill the recording)
    record = mode != "lakefs-upload"
    if record:
        _recorder(s3, "reset-recording")
        _recorder(s3, "start-recording")
    try:
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, mode, folder, str(store), endpoint, s3],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
    finally:
        if record:
            _recorder(s3, "stop-recording")
    if result.returncode != 0:
        raise SystemExit(f"{mode} commit failed:\n{result.stderr[-3000:]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["shard_get_requests"] = None
    if record:
        lines = _recorder(s3, "download-recording").decode().splitlines()
        row["shard_get_requests"] = sum(
            1
            for entry in map(json.loads, lines)
            if entry["method"] == "GET" and "/shards/" in entry["url"] and "list-type" not in entry["url"]
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--work", default="/tmp/curate-bench-commit-s3")
    parser.add_argument("--out", default=str(HERE / "results" / "commit_from_s3.json"))
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, **S3_KEYS, "MOTO_RECORDER_FILEPATH": str(work / "rec")}
    port = _free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    s3 = f"http://127.0.0.1:{port}"
    server = None
    rows = []
    try:
        import boto3

        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        os.environ.update(S3_KEYS)
        client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1")
        for bucket in ("datasets", "lakefs"):
            client.create_bucket(Bucket=bucket)
        blockstore = S3Blockstore(s3, S3_KEYS["AWS_ACCESS_KEY_ID"], S3_KEYS["AWS_SECRET_ACCESS_KEY"])
        server = LakeFSServer(work / "server", s3=blockstore)
        endpoint = server.start()
        server.create_repository("bench", storage_namespace="s3://lakefs/bench")
        env.update(LK=server.access_key_id, LS=server.secret_access_key)
        floor = measure("none", "s3://datasets/none", work / "store-none", endpoint, s3, env)
        rows.append({"mode": "import-only", "size_mb": 0, **floor})
        for size in args.sizes_mb:
            folder = make_output(client, size)
            for mode in ("embedded", "lakefs-upload", "lakefs-import"):
                mode_env = dict(env)
                if mode == "lakefs-import":
                    mode_env["CURATE_LAKEFS_IMPORT_FROM"] = "s3://datasets/"
                row = {"mode": mode, "size_mb": size}
                row.update(measure(mode, folder, work / f"store-{size}", endpoint, s3, mode_env))
                rows.append(row)
                peak, seconds, gets = row["peak_rss_mb"], row["seconds"], row["shard_get_requests"]
                line = f"  {mode:<14}{size:>6} MB  peak RSS {peak:8.1f} MB  {seconds:6.1f} s  GETs {gets}"
                print(line, flush=True)
            shutil.rmtree(work / f"store-{size}", ignore_errors=True)
    finally:
        if server is not None:
            server.stop()
        moto.terminate()
        moto.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'mode':<15}{'shard MB':>9}{'peak RSS MB':>13}{'seconds':>9}{'shard GETs':>12}")
    for row in rows:
        print(
            f"{row['mode']:<15}{row['size_mb']:>9}{row['peak_rss_mb']:>13.1f}{row['seconds']:>9.1f}"
            f"{'-' if row['shard_get_requests'] is None else row['shard_get_requests']:>12}"
        )
    write_results(
        args.out,
        "commit_from_s3",
        "peak RSS (ru_maxrss) of the committing process alone; moto's S3 server and the lakeFS server"
        " (real, built from its source) run in other processes; shard GETs: GetObject requests for the"
        " shard that the S3 server received during the commit, from any client",
        rows,
    )


if __name__ == "__main__":
    main()

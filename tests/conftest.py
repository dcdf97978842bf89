"""Shared fixtures: the real sample data in ../shared/data, read one way for every test module.

Test modules never import this file (or each other): they ask for these fixtures by name. A missing
../shared skips the tests that need it, except in CI, where it fails them.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

JSONL_SAMPLE = "cc_en_head-0091.jsonl.gz"  # 10 CCNet-processed English documents
CRAWL_SAMPLE = "web-sample-0000.warc.gz"  # 22 HTTP responses from Dolma's web sample


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; skips the test when ../shared is absent (never in CI: it fails).

    Tests, and fixtures in the conftest files of sub-folders, get it from the `shared_path` fixture.
    """
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing: CI must run with ../shared beside the checkout")
        pytest.skip(f"needs the sample data at {path} (the ../shared folder beside the checkout)")
    return path


@pytest.fixture(name="shared_path", scope="session")
def shared_path_fixture() -> Callable[..., Path]:
    """`shared_path("crawl", name)`: a sample file, skipping (or failing in CI) when it is absent."""
    return shared_path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_path()


# ------------------------------------------------------------------------------ JSONL samples (CCNet)


def _jsonl_rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def jsonl_files() -> tuple[Path, ...]:
    """Both CCNet JSONL samples (0091, 0174; 20 documents in all), sorted by name."""
    return tuple(sorted(shared_path("jsonl").glob("*.jsonl.gz")))


@pytest.fixture(scope="session")
def jsonl_file() -> Path:
    """One CCNet JSONL sample: 10 English documents."""
    return shared_path("jsonl", JSONL_SAMPLE)


@pytest.fixture
def jsonl_rows(jsonl_file: Path) -> list[dict]:
    """The parsed rows of `jsonl_file` (a fresh list for each test: change it freely)."""
    return _jsonl_rows(jsonl_file)


@pytest.fixture(scope="session")
def jsonl_texts(jsonl_files: tuple[Path, ...]) -> tuple[str, ...]:
    """The text of every document of the JSONL samples, file by file (20 real English web documents)."""
    return tuple(row["text"] for path in jsonl_files for row in _jsonl_rows(path))


@pytest.fixture(scope="session")
def sentence_docs(jsonl_files: tuple[Path, ...]) -> tuple[dict, ...]:
    """Real CCNet text split into sentences: ~1,500 documents from two files (two domains by source).

    Shared by the whole session: read them, copy what you change.
    """
    docs = []
    for path in jsonl_files:
        for record in _jsonl_rows(path):
            for i, sentence in enumerate(re.split(r"(?<=[.!?])\s+|\n", record["text"])):
                if sentence.strip():
                    docs.append({"id": f"{record['id']}#{i}", "text": sentence, "source": str(path)})
    return tuple(docs)


# ------------------------------------------------------------------------------- word lists, crawl


@pytest.fixture(scope="session")
def ldnoobw() -> Callable[[str], str]:
    """`ldnoobw("en")`: the path of a real LDNOOBW bad-word list, as a string, as recipes name lists."""
    return lambda lang: str(shared_path("blocklists", "ldnoobw", lang))


@pytest.fixture(scope="session")
def crawl_file() -> Path:
    """One WARC of the crawl samples: 22 HTTP responses of English web pages."""
    return shared_path("crawl", CRAWL_SAMPLE)


@pytest.fixture(scope="session")
def extracted_pages() -> Callable[[str], list[dict]]:
    """`extracted_pages(name)`: every response with a body in the crawl sample `name`, as
    {"url", "content_type", "text"} with the extracted main text; extraction runs once a session."""
    # imported on first use: tests that never read the crawl do not pay for importing Beam
    from curate.filters.html_extract import extract_main_text
    from curate.pipelines.readers import read_warc

    cache: dict[str, list[tuple[str | None, str | None, str]]] = {}

    def pages(name: str) -> list[dict]:
        if name not in cache:
            path = shared_path("crawl", name)
            with open(path, "rb") as raw:
                docs = [doc for doc in read_warc(raw, str(path)) if doc.get("html")]
            cache[name] = [
                (doc["url"], doc.get("content_type"), extract_main_text(doc["html"], doc.get("charset")))
                for doc in docs
            ]
        return [{"url": url, "content_type": ctype, "text": text} for url, ctype, text in cache[name]]

    return pages


# ------------------------------------------------------------------------------------- run outputs


@pytest.fixture(scope="session")
def shard_digests() -> Callable[[Path], dict[str, str]]:
    """`shard_digests(out)`: {shard file name: sha256} of a run's output, to compare runs byte for byte."""

    def digests(out: Path) -> dict[str, str]:
        return {
            Path(p).name: hashlib.sha256(Path(p).read_bytes()).hexdigest()
            for p in sorted(glob.glob(str(out / "shards" / "*.parquet")))
        }

    return digests


@pytest.fixture(scope="session")
def output_rows() -> Callable[[Path, str], list[dict]]:
    """`output_rows(out, "documents")`: every row of one Parquet folder of a run's output, file by file."""
    import pyarrow.parquet as pq

    def rows(out: Path, folder: str) -> list[dict]:
        files = sorted(glob.glob(str(out / folder / "*.parquet")))
        return [row for f in files for row in pq.read_table(f).to_pylist()]

    return rows


# ------------------------------------------------------ real servers, and a reference run to compare to
# Object-store and runner tests compare against one local run of the same small input, and share one S3
# server (moto's server mode: a real HTTP S3 API on 127.0.0.1) for the whole session.

S3_KEYS = {"AWS_ACCESS_KEY_ID": "curate-test-key", "AWS_SECRET_ACCESS_KEY": "curate-test-secret"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
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


def _small_recipe(inputs: list[str], out: str, **extra) -> dict:
    return {
        "input": inputs,
        "output": out,
        "runner": {"name": "direct", "workers": 1},
        "stages": {"tokenize": {"shard_tokens": 20_000}},
        **extra,
    }


def _s3_objects(endpoint: str, bucket: str, prefix: str) -> dict[str, bytes]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def _shard_digests_in(objects: dict[str, bytes]) -> dict[str, str]:
    return {
        key.rsplit("/", 1)[-1]: hashlib.sha256(data).hexdigest()
        for key, data in objects.items()
        if "/shards/" in key and key.endswith(".parquet")
    }


@pytest.fixture(scope="session")
def servers() -> SimpleNamespace:
    """Helpers for tests that start real servers and runs: ``free_port()``, ``wait_for_port(port, proc)``,
    ``bin`` (this environment's scripts), ``small_inputs()`` (one real WARC and one real JSONL file: every
    reader in a run of about a minute), ``small_recipe(inputs, out, **extra)`` (one worker), the S3 test
    ``keys``, ``s3_objects(endpoint, bucket, prefix)`` ({key: bytes}) and ``shard_digests_in(objects)``."""
    return SimpleNamespace(
        free_port=_free_port,
        wait_for_port=_wait_for_port,
        bin=Path(sys.executable).parent,
        small_inputs=lambda: [
            shared_path("crawl", CRAWL_SAMPLE),
            shared_path("jsonl", "cc_en_head-0174.jsonl.gz"),
        ],
        small_recipe=_small_recipe,
        keys=dict(S3_KEYS),
        s3_objects=_s3_objects,
        shard_digests_in=_shard_digests_in,
    )


@pytest.fixture(scope="session")
def beam_job_service(servers):
    """`localhost:PORT` of Beam's local job service (the portable runner's endpoint), one per session."""
    port = servers.free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        servers.wait_for_port(port, service)
        yield f"localhost:{port}"
    finally:
        service.terminate()
        service.wait(timeout=30)


@pytest.fixture(scope="session")
def reference_shards(tmp_path_factory, servers, shard_digests) -> dict[str, str]:
    """Shard name -> sha256 of a local run of ``servers.small_inputs()`` with ``servers.small_recipe``."""
    from curate.config import parse_config
    from curate.run import run

    out = tmp_path_factory.mktemp("reference") / "out"
    run(parse_config(_small_recipe([str(p) for p in servers.small_inputs()], str(out))), progress=False)
    return shard_digests(out)


@pytest.fixture(scope="session")
def s3_server(servers, tmp_path_factory):
    """``http://127.0.0.1:PORT`` of a moto S3 server holding bucket ``crawl`` (the small inputs under
    ``in/``) and an empty bucket ``datasets``; its credentials are in this process's environment. Its
    request recorder is on hand: see ``s3_requests``."""
    port = _free_port()
    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
    server = subprocess.Popen(
        [str(servers.bin / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)},
    )
    saved = {key: os.environ.get(key) for key in S3_KEYS}
    os.environ.update(S3_KEYS)
    try:
        _wait_for_port(port, server)
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="crawl")
        client.create_bucket(Bucket="datasets")
        for path in servers.small_inputs():
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
def gcs_server(servers):
    """A gcp-storage-emulator on 127.0.0.1 (STORAGE_EMULATOR_HOST set meanwhile) with bucket ``crawl-gcs``
    (the small inputs under ``in/``) and an empty bucket ``datasets-gcs``; yields an anonymous
    google-cloud-storage client of it."""
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


@pytest.fixture
def s3_requests(s3_server):
    """``with s3_requests() as seen:`` records every request the S3 server gets meanwhile (moto's own
    recorder, whoever sends them) into ``seen`` as (method, path, query) tuples when the block ends."""
    import contextlib
    import urllib.parse
    import urllib.request

    def call(action: str) -> bytes:
        with urllib.request.urlopen(f"{s3_server}/moto-api/recorder/{action}", data=b"") as response:
            return response.read()

    @contextlib.contextmanager
    def recording():
        seen: list[tuple[str, str, str]] = []
        call("reset-recording")
        call("start-recording")
        try:
            yield seen
        finally:
            call("stop-recording")
            with urllib.request.urlopen(f"{s3_server}/moto-api/recorder/download-recording") as response:
                lines = response.read().decode().splitlines()
            for line in lines:
                entry = json.loads(line)
                url = urllib.parse.urlsplit(entry["url"])
                seen.append((entry["method"], urllib.parse.unquote(url.path), url.query))

    return recording


# ------------------------------------------------------------------------------ a real lakeFS server
# lakeFS built from its published source (tools/lakefs_build.sh, `make lakefs-server`), one per session;
# tests make repositories of their own on it. Not built: the tests skip, except in CI, where they fail.


def _started_lakefs(root: Path, s3=None):
    from support.lakefs_server import LakeFSServer, LakeFSUnavailable

    server = LakeFSServer(root, s3=s3)
    try:
        server.start()
    except LakeFSUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"no lakeFS server for the lakeFS tests: {error}")
        pytest.skip(f"needs the lakeFS server: {error}")
    return server


@pytest.fixture(scope="session")
def lakefs_server(tmp_path_factory):
    """A real lakeFS server on 127.0.0.1 (local metadata store and blockstore), admin credentials made
    for it: ``endpoint``, ``access_key_id``, ``secret_access_key``, ``create_repository(name)``."""
    server = _started_lakefs(tmp_path_factory.mktemp("lakefs"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lakefs_s3_server(s3_server, tmp_path_factory):
    """A real lakeFS server whose blockstore is the moto S3 server: repositories keep their objects under
    ``s3://lakefs/<name>``, and lakeFS's zero-copy import reads from the other buckets there."""
    import boto3
    from support.lakefs_server import S3Blockstore

    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket="lakefs")
    s3 = S3Blockstore(s3_server, S3_KEYS["AWS_ACCESS_KEY_ID"], S3_KEYS["AWS_SECRET_ACCESS_KEY"])
    server = _started_lakefs(tmp_path_factory.mktemp("lakefs-s3"), s3=s3)
    yield server
    server.stop()


@pytest.fixture
def lakefs_env(lakefs_server, monkeypatch):
    """LAKEFS_* pointing at the lakeFS server (what a user sets for their own)."""
    monkeypatch.setenv("LAKEFS_ENDPOINT", lakefs_server.endpoint)
    monkeypatch.setenv("LAKEFS_ACCESS_KEY_ID", lakefs_server.access_key_id)
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", lakefs_server.secret_access_key)
    return lakefs_server


@pytest.fixture
def lakefs_requests(monkeypatch):
    """``with lakefs_requests() as seen:`` records every HTTP request this process sends meanwhile (the
    lakeFS SDK and curate's streamed transfers both go through urllib3) as SimpleNamespace(method, route,
    path, query, length): route is the /api/v1 path with the repository's name replaced by {repository},
    length the response's Content-Length (what the server sent)."""
    import contextlib
    import urllib.parse

    import urllib3

    original = urllib3.PoolManager.urlopen

    @contextlib.contextmanager
    def recording():
        seen: list[SimpleNamespace] = []

        def urlopen(self, method, url, *args, **kwargs):
            response = original(self, method, url, *args, **kwargs)
            parts = urllib.parse.urlsplit(url)
            pieces = parts.path.split("/")
            if len(pieces) > 4 and pieces[3] == "repositories":
                pieces[4] = "{repository}"
            query = dict(urllib.parse.parse_qsl(parts.query))
            length = int(response.headers.get("Content-Length") or 0)
            seen.append(SimpleNamespace(method=method, route="/".join(pieces), query=query, length=length))
            return response

        monkeypatch.setattr(urllib3.PoolManager, "urlopen", urlopen)
        try:
            yield seen
        finally:
            monkeypatch.setattr(urllib3.PoolManager, "urlopen", original)

    return recording


# ------------------------------------------------------------ quality classifier (trained once a session)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The demo's real Wikipedia articles (`curate demo fetch`), the gensim wheel cached across sessions."""
    from curate.demo import write_demo_corpus

    out = tmp_path_factory.mktemp("demo")
    write_demo_corpus(out, cache=Path.home() / ".cache" / "curate" / "demo-wheel")
    return out


def _crawl_pages() -> list[dict]:
    """Main text of every HTML page in ../shared/data/crawl, as documents."""
    from curate.filters.html_extract import extract_main_text, is_html_content_type
    from curate.pipelines.readers import InputConfig, read_file

    docs = []
    for path in sorted(shared_path("crawl").glob("*.warc.gz")):
        for doc in read_file(str(path), InputConfig()):
            html = doc.get("html")
            if html is not None and is_html_content_type(doc.get("content_type")):
                text = extract_main_text(html, doc.get("charset"))
                if text.strip():
                    docs.append({"id": doc["id"], "url": doc.get("url"), "text": text})
    return docs


@pytest.fixture(scope="session")
def crawl_pages() -> tuple[dict, ...]:
    """Main text of every HTML page in ../shared/data/crawl, as documents (shared: copy what you change)."""
    return tuple(_crawl_pages())


@pytest.fixture(scope="session")
def jigsaw() -> Callable[[str], list[dict[str, str]]]:
    """`jigsaw(split)`: rows of the real Jigsaw sample with a human label; `scored_only=False` keeps the
    test split's unscored comments too (toxic == "-1"), real text all the same."""
    import csv

    def rows(split: str, scored_only: bool = True) -> list[dict[str, str]]:
        with shared_path("toxicity", f"jigsaw-sample-{split}.csv").open(encoding="utf-8", newline="") as f:
            return [row for row in csv.DictReader(f) if not scored_only or row["toxic"] != "-1"]

    return rows


@pytest.fixture(scope="session")
def shared_bench_script() -> Callable[[str], Path]:
    """`shared_bench_script(name)`: a script of ../shared/bench; skips when absent (fails in CI)."""

    def script(name: str) -> Path:
        path = SHARED / "bench" / name
        if not path.exists():
            if os.environ.get("CI"):
                pytest.fail(f"{path} is missing: CI must run with ../shared beside the checkout")
            pytest.skip(f"needs {path} (the ../shared folder beside the checkout)")
        return path

    return script


@pytest.fixture(scope="session")
def quality_rejected_pages(tmp_path_factory) -> Path:
    """Pages of the shared crawl that the quality rules reject, as JSONL (the classifier's negatives)."""
    import json

    from curate.filters.quality import QualityConfig, QualityFilter

    pages = _crawl_pages()
    rules = QualityFilter(QualityConfig())
    rejected = [d for d, a in zip(pages, rules.annotate(pages), strict=True) if rules.decide(a, d)]
    path = tmp_path_factory.mktemp("negatives") / "rejected.jsonl"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in rejected), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def quality_model(demo_corpus, quality_rejected_pages, tmp_path_factory):
    """A fastText classifier trained by `curate classifier train` (Wikipedia vs rejected crawl pages)."""
    from curate.classifier_train import train

    output = tmp_path_factory.mktemp("classifier") / "wiki_vs_crawl.bin"
    report = train(
        [str(demo_corpus / "wikipedia-en.jsonl.gz")],
        [str(quality_rejected_pages)],
        str(output),
        valid_fraction=0.3,
    )
    return output, report


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory, jsonl_file: Path) -> Path:
    """One real `curate run` from the command line over `jsonl_file` (10 documents), shared by the report
    and service tests: its output folder, with stats.json, manifest.json and report.html."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("small-run")
    recipe = folder / "recipe.yaml"
    recipe.write_text("runner: {name: direct, workers: 1}\n")
    out = folder / "out"
    command = [
        sys.executable,
        "-m",
        "curate",
        "run",
        str(recipe),
        "--input",
        str(jsonl_file),
        "--output",
        str(out),
    ]
    subprocess.run([*command, "--quiet"], check=True)
    return out


@pytest.fixture(scope="session", autouse=True)
def _train_runs_list(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Training runs list themselves for the service's chart (curate.train_runs): in a scratch file for the
    whole session (services and workers inherit it), never in ~/.curate."""
    previous = os.environ.get("CURATE_TRAIN_RUNS")
    os.environ["CURATE_TRAIN_RUNS"] = str(tmp_path_factory.mktemp("train-runs") / "train-runs.jsonl")
    yield
    if previous is None:
        os.environ.pop("CURATE_TRAIN_RUNS", None)
    else:
        os.environ["CURATE_TRAIN_RUNS"] = previous

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
def store(tmp_path_factory):
    """The embedded version store the S3 run commits to (also for the CLI's subprocesses)."""
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CURATE_STORE", str(root))
        yield root


@pytest.fixture(scope="module")
def s3_run(s3_server, reference_shards, servers, store):
    """The small run with input and output on S3, committed as dataset web-s3 of the embedded store."""
    recipe = servers.small_recipe(
        ["s3://crawl/in/*.warc.gz", "s3://crawl/in/*.jsonl.gz"],
        {"path": "s3://datasets/web-en", "dataset": "web-s3"},
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
    assert not any(n.startswith(".staging") for n in names)  # every staged object was published
    for kind in ("exact", "minhash"):  # nested folders move too (a "*" match would stop at index/)
        assert any(n.startswith(f"index/{kind}/") and n.endswith(".parquet") for n in names), kind
    assert servers.shard_digests_in(objects) == reference_shards != {}
    stats = json.loads(objects["web-en/stats.json"])
    assert stats["balanced"] and stats["documents_read"] == s3_run.documents_read > 0
    manifest = json.loads(objects["web-en/manifest.json"])
    assert {s["path"].rsplit("/", 1)[-1]: s["sha256"] for s in manifest["shards"]} == reference_shards
    assert manifest["config"]["output"]["path"] == "s3://datasets/web-en"  # never the staging folder
    assert b".staging" not in objects["web-en/report.html"]
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


def test_the_s3_run_is_committed_as_a_version_with_the_same_shards(s3_run, reference_shards, store):
    from curate.versions import EmbeddedRepository, LocalStore

    assert s3_run.commit and s3_run.commit.startswith("web-s3@")
    repository = EmbeddedRepository("web-s3", LocalStore(store))
    version = repository.resolve("main")
    files = repository.files("main")
    stored = {
        path.rsplit("/", 1)[-1]: entry["sha256"]
        for path, entry in files.items()
        if path.startswith("shards/")
    }
    assert stored == reference_shards != {}
    assert {"manifest.json", "stats.json", "tokenizer.json"} <= files.keys()
    assert not any(p.startswith(".") or p == "run.log" for p in files)  # staging and the log are not in it
    lineage = version.lineage
    assert lineage["output"] == "s3://datasets/web-en"
    assert sorted(i["path"] for i in lineage["inputs"]) == [
        "s3://crawl/in/cc_en_head-0174.jsonl.gz",
        "s3://crawl/in/web-sample-0000.warc.gz",
    ]
    assert all(i.get("checksum") for i in lineage["inputs"])  # the store's checksum (ETag)
    assert lineage["stats"]["documents_kept"] == s3_run.documents_kept


def test_shards_verify_and_train_read_the_s3_runs_version(s3_run, tmp_path):
    verified = _cli("shards", "verify", "web-s3@main")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ok (checksums, schema, EOS, counts, decode round-trip)" in verified.stdout
    pytest.importorskip("torch")
    result = _cli(
        "train", "--data", "web-s3@main", "--preset", "tiny", "--steps", "2", "--device", "cpu",
        "--eval-every", "0", "--log-every", "1", "--output", str(tmp_path / "train"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    steps = [json.loads(line) for line in (tmp_path / "train" / "train.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s][-1] == 2


def test_versions_commit_takes_a_folder_on_s3(s3_server, s3_run, store, reference_shards):
    from curate.versions import EmbeddedRepository, LocalStore

    result = _cli(
        "versions", "commit", "s3://datasets/web-en", "web-cli@main", "--s3-endpoint-url", s3_server
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = EmbeddedRepository("web-cli", LocalStore(store)).files("main")
    shards = {p.rsplit("/", 1)[-1]: e["sha256"] for p, e in files.items() if p.startswith("shards/")}
    assert shards == reference_shards
    assert "run.log" not in files  # the log the run wrote beside its results is not part of a version


def test_secrets_in_a_recipe_are_refused(servers):
    recipe = servers.small_recipe(["s3://crawl/in/*"], "s3://datasets/x")
    recipe["runner"]["options"] = {"s3_secret_access_key": "abc"}
    expected = "s3_secret_access_key must not be in a recipe.*AWS_SECRET_ACCESS_KEY"
    with pytest.raises(CurateError, match=expected):
        parse_config(recipe)


# ------------------------------------------------------------------------------------------------ GCS


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


# ------------------------------------------------------------------------- lakeFS over the S3 output
# A real lakeFS server (tests/support/lakefs_server.py) with the moto S3 server as its S3 blockstore: its
# zero-copy import lists the run's folder there, and it serves imported objects from where they are.


@pytest.fixture
def lakefs_s3(lakefs_s3_server, s3_server, monkeypatch):
    """A fresh lakeFS repository whose storage namespace is on the S3 server, and its backend; this
    process's S3 filesystem points at the S3 server (as every command sets it up first)."""
    import uuid

    from curate.object_store import configure
    from curate.pipelines.runner import StorageConfig
    from curate.versions.lakefs import Credentials, LakeFSRepository

    configure(StorageConfig(s3_endpoint_url=s3_server, s3_region="us-east-1"))

    monkeypatch.setenv("LAKEFS_ENDPOINT", lakefs_s3_server.endpoint)
    monkeypatch.setenv("LAKEFS_ACCESS_KEY_ID", lakefs_s3_server.access_key_id)
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", lakefs_s3_server.secret_access_key)
    name = f"web-{uuid.uuid4().hex[:8]}"
    lakefs_s3_server.create_repository(name, storage_namespace=f"s3://lakefs/{name}")
    server = lakefs_s3_server
    return LakeFSRepository(
        name, Credentials(server.endpoint, server.access_key_id, server.secret_access_key)
    )


def _shards_of(repository, ref: str, folder) -> dict[str, str]:
    """Shard name -> sha256 of a lakeFS version, checked out (streamed) into ``folder``."""
    repository.checkout(ref, folder)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shards/*"))}


def test_lakefs_imports_an_s3_output_without_its_bytes_passing_through(
    s3_run, lakefs_s3, s3_requests, lakefs_requests, reference_shards, monkeypatch, tmp_path
):
    monkeypatch.setenv("CURATE_LAKEFS_IMPORT_FROM", "s3://datasets/")
    with s3_requests() as seen, lakefs_requests() as sent:
        version = lakefs_s3.commit_output("s3://datasets/web-en", "main", "imported", {"stats": {}}, "imp1")
    routes = [(r.method, r.route.split("/branches/")[-1]) for r in sent if "/branches/" in r.route]
    assert ("POST", "runs-imp1/import") in routes
    assert not any(route.endswith("/objects") for method, route in routes if method == "POST")  # no upload
    reads = [path for method, path, query in seen if method == "GET" and "list-type" not in query]
    assert not any("/shards/" in path or "/documents/" in path for path in reads), reads
    assert {path for path in reads} <= {"/datasets/web-en/manifest.json"}  # read once, to check it
    listed = [path for method, path, query in seen if method == "GET" and "list-type" in query]
    assert listed  # lakeFS (and curate) listed the folder instead

    objects = lakefs_s3._listing(version.id)
    shard_paths = sorted(p for p in objects if p.startswith("shards/"))
    assert shard_paths and all(
        objects[p].physical_address == f"s3://datasets/web-en/{p}" for p in objects
    )  # every file of the version is the run's own object on S3
    assert lakefs_s3.last_transfer["imported"] == len(objects) and lakefs_s3.last_transfer["uploaded"] == 0
    assert set(lakefs_s3.branches()) == {"main"}
    assert _shards_of(lakefs_s3, "main", tmp_path / "checkout") == reference_shards != {}


def test_a_run_may_not_overwrite_the_folder_a_version_was_imported_from(s3_run, lakefs_s3, monkeypatch):
    from curate.versions.lineage import check_commit_target

    monkeypatch.setenv("CURATE_LAKEFS_IMPORT_FROM", "s3://datasets/")
    lakefs_s3.commit_output("s3://datasets/web-en", "main", "imported")
    output = {"path": "s3://datasets/web-en", "dataset": lakefs_s3.name}
    config = parse_config({"input": ["s3://crawl/in/*"], "output": output})
    with pytest.raises(CurateError, match=r"^s3://datasets/web-en: lakefs://web-\w+@main was imported from"):
        check_commit_target(config)
    other = parse_config({"input": ["s3://crawl/in/*"], "output": {**output, "path": "s3://datasets/run-2"}})
    check_commit_target(other)  # a new folder per run is fine


def test_lakefs_uploads_an_s3_output_it_may_not_import(
    s3_run, lakefs_s3, reference_shards, monkeypatch, tmp_path
):
    monkeypatch.delenv("CURATE_LAKEFS_IMPORT_FROM", raising=False)
    lakefs_s3.commit_output("s3://datasets/web-en", "main", "uploaded")
    objects = lakefs_s3._listing("main")
    assert lakefs_s3.last_transfer["uploaded"] == len(objects) and lakefs_s3.last_transfer["imported"] == 0
    namespace = f"s3://lakefs/{lakefs_s3.repo}/"
    assert all(o.physical_address.startswith(namespace) for o in objects.values())  # lakeFS's own copies
    assert _shards_of(lakefs_s3, "main", tmp_path / "checkout") == reference_shards
    # Importing from inside a repository's storage namespace would point versions at lakeFS's own objects
    # (later lakeFS releases answer 400; 0.113 does not check): curate never asks lakeFS to.
    monkeypatch.setenv("CURATE_LAKEFS_IMPORT_FROM", "s3://lakefs/")
    assert not lakefs_s3.importable(namespace + "out") and not lakefs_s3.importable(namespace.rstrip("/"))
    assert not lakefs_s3.importable("s3://lakefs/") and lakefs_s3.importable("s3://lakefs/elsewhere")


def test_a_failed_import_leaves_the_target_branch_untouched(
    s3_run, s3_server, lakefs_s3, lakefs_requests, monkeypatch, tmp_path
):
    import boto3

    monkeypatch.setenv("CURATE_LAKEFS_IMPORT_FROM", "s3://datasets/")
    before = lakefs_s3.resolve("main").id
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    manifest = json.loads(client.get_object(Bucket="datasets", Key="web-en/manifest.json")["Body"].read())
    key = f"web-en/{manifest['shards'][0]['path']}"
    original = client.get_object(Bucket="datasets", Key=key)["Body"].read()

    def replace_a_shard(relative: str, size: int) -> None:  # after curate listed the folder, before lakeFS
        if relative == manifest["shards"][0]["path"]:
            client.put_object(Bucket="datasets", Key=key, Body=original + b"tampered")

    try:
        with pytest.raises(CurateError, match=r"changed while lakeFS imported the output.*main is unchanged"):
            lakefs_s3.commit_output("s3://datasets/web-en", "main", "x", on_progress=replace_a_shard)
    finally:
        client.put_object(Bucket="datasets", Key=key, Body=original)
    assert lakefs_s3.resolve("main").id == before and set(lakefs_s3.branches()) == {"main"}

    # Interrupted at the first look at the import's status: curate asks lakeFS to cancel the import (which
    # lakeFS refuses if it finished already) and drops the run branch; main never moves.
    class Killed(Exception):
        pass

    def kill_while_importing(relative: str, size: int) -> None:
        if relative.startswith("import "):
            raise Killed

    with lakefs_requests() as sent, pytest.raises(Killed):
        lakefs_s3.commit_output("s3://datasets/web-en", "main", "y", on_progress=kill_while_importing)
    assert lakefs_s3.resolve("main").id == before and set(lakefs_s3.branches()) == {"main"}
    assert [r.method for r in sent if r.route.endswith("/import")] == ["POST", "GET", "DELETE"]


def test_an_import_with_nothing_else_to_commit_still_lands_on_the_target(lakefs_s3, s3_server, monkeypatch):
    """lakeFS's import commits on the run branch by itself; with no other change there the run's own
    commit has nothing staged (lakeFS 0.113 refuses it), and the import must still be merged."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    shard = b"only shard"
    files = {
        "shards/shard-00000.parquet": shard,
        "manifest.json": json.dumps(
            {"shards": [{"path": "shards/shard-00000.parquet", "sha256": hashlib.sha256(shard).hexdigest()}]}
        ).encode(),
        "stats.json": b'{"documents_kept": 1}',
    }
    for key, body in files.items():
        client.put_object(Bucket="datasets", Key=f"bare/{key}", Body=body)
    monkeypatch.setenv("CURATE_LAKEFS_IMPORT_FROM", "s3://datasets/bare/")
    version = lakefs_s3.commit_output(
        "s3://datasets/bare", "main", "bare import", {"stats": {"documents_kept": 1}}
    )
    assert lakefs_s3.last_transfer["imported"] == 3 and lakefs_s3.resolve("main").id == version.id
    assert set(lakefs_s3.files("main")) == set(files) and version.lineage == {"stats": {"documents_kept": 1}}
    assert set(lakefs_s3.branches()) == {"main"}
    assert lakefs_s3.open("main", "shards/shard-00000.parquet").read() == shard

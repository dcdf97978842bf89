"""The lakeFS backend's own rules (credentials, URIs, streaming, errors) and the real lakeFS server's
behaviour where lakeFS documents it; the scenario shared with the embedded store is in test_versions."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
import uuid

import pytest

from curate.core.errors import CurateError
from curate.versions import locate, resolve_data
from curate.versions.lakefs import Credentials, LakeFSRepository, load_credentials, parse_uri


def _repository(server, **credentials) -> LakeFSRepository:
    name = f"t-{uuid.uuid4().hex[:10]}"
    server.create_repository(name)
    creds = Credentials(server.endpoint, server.access_key_id, server.secret_access_key)
    return LakeFSRepository(name, Credentials(**{**creds.__dict__, **credentials}))


def _output(folder, payload: bytes):
    (folder / "shards").mkdir(parents=True)
    (folder / "shards" / "shard-00000.parquet").write_bytes(payload)
    (folder / "stats.json").write_text(json.dumps({"documents_kept": 1}))
    sha = hashlib.sha256(payload).hexdigest()
    (folder / "manifest.json").write_text(
        json.dumps({"shards": [{"path": "shards/shard-00000.parquet", "sha256": sha}]})
    )
    return folder


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("lakefs://web", ("web", None, "")),
        ("lakefs://web/main", ("web", "main", "")),
        ("lakefs://web/v1/runs/a/", ("web", "v1", "runs/a")),
        ("lakefs://web@v1", ("web", "v1", "")),
        ("lakefs://web@v1/out", ("web", "v1", "out")),
    ],
)
def test_uris(uri, parsed):
    assert parse_uri(uri) == parsed


def test_credentials_from_the_environment_then_lakectl(tmp_path, monkeypatch):
    for name in ("LAKEFS_ENDPOINT", "LAKECTL_SERVER_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CurateError, match="no lakeFS server configured: set LAKEFS_ENDPOINT"):
        load_credentials()
    (tmp_path / ".lakectl.yaml").write_text(
        "credentials:\n  access_key_id: AKIAFILE\n  secret_access_key: from-file\n"
        "server:\n  endpoint_url: http://lakefs.example:8000/api/v1\n"
    )
    assert load_credentials() == Credentials("http://lakefs.example:8000", "AKIAFILE", "from-file")
    monkeypatch.setenv("LAKEFS_ENDPOINT", "http://env:8000/")
    monkeypatch.setenv("LAKEFS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.delenv("LAKEFS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(CurateError, match="LAKEFS_ENDPOINT is set but LAKEFS_ACCESS_KEY_ID or LAKEFS_SECRET"):
        load_credentials()
    monkeypatch.setenv("LAKEFS_SECRET_ACCESS_KEY", "env-secret")
    creds = load_credentials()
    assert creds == Credentials("http://env:8000", "AKIAENV", "env-secret") and "env-secret" not in repr(
        creds
    )


def test_curate_repo_names_the_repository_of_bare_refs(lakefs_env, monkeypatch):
    lakefs_env.create_repository("envrepo")
    monkeypatch.setenv("CURATE_REPO", "lakefs://envrepo")
    store, ref = locate("main")
    assert (store.name, ref) == ("lakefs://envrepo", "main")
    store, ref = locate("lakefs://envrepo")
    assert ref == "main"  # the repository's default branch


def test_an_unreachable_server_is_one_line_naming_it(monkeypatch):
    repository = LakeFSRepository("web", Credentials("http://127.0.0.1:9", "AKIA", "sekrit"), retries=0)
    with pytest.raises(CurateError, match=r"^cannot reach lakeFS at http://127.0.0.1:9 .* reading the log"):
        repository.log("main")


def test_a_mismatched_shard_is_refused_before_the_repository_is_touched(
    lakefs_server, lakefs_requests, tmp_path
):
    repository = _repository(lakefs_server)
    folder = _output(tmp_path / "out", b"good")
    (folder / "shards" / "shard-00000.parquet").write_bytes(b"evil")
    with lakefs_requests() as seen, pytest.raises(CurateError, match="sha256 differs from manifest.json"):
        repository.commit_output(folder, "main", "bad")
    assert seen == []
    assert set(repository.branches()) == {"main"}


def test_an_identical_output_uploads_nothing_and_is_the_version_already_there(
    lakefs_server, lakefs_requests, tmp_path
):
    repository = _repository(lakefs_server)
    folder = _output(tmp_path / "out", b"shard bytes")
    first = repository.commit_output(folder, "main", "one", {"stats": {"documents_kept": 1}})
    with lakefs_requests() as seen:
        second = repository.commit_output(folder, "main", "two", {"stats": {"documents_kept": 1}})
    uploads = [r for r in seen if r.method == "POST" and r.route.endswith("/objects")]
    assert uploads == [] and repository.last_transfer == {"imported": 0, "uploaded": 0, "unchanged": 3}
    # lakeFS 0.113 refuses a commit with nothing staged ("commit: no changes"; allow_empty came in 1.x):
    # the version of an identical output is the head that holds those files
    assert second.id == first.id == repository.resolve("main").id
    assert set(repository.branches()) == {"main"}  # the run branch is gone


def test_ranged_reads_fetch_only_what_is_read(lakefs_env, lakefs_requests, tmp_path):
    payload = bytes(range(256)) * 80_000  # ~20 MB
    repository = _repository(lakefs_env)
    repository.commit_output(_output(tmp_path / "out", payload), "main", "big")
    remote = resolve_data(f"{repository.name}/main") / "shards" / "shard-00000.parquet"
    with lakefs_requests() as seen, remote.open() as handle:
        handle.seek(len(payload) - 10)
        assert handle.read() == payload[-10:]
        handle.seek(1000)
        assert handle.read(5) == payload[1000:1005]
    sent = sum(r.length for r in seen if r.method == "GET" and r.route.endswith("/objects"))
    assert 10 < sent <= 10 + (4 << 20)  # the tail, then one 4 MB buffer


def test_uploads_stream_in_flat_memory(lakefs_server, tmp_path):
    payload_size = 64 << 20
    folder = tmp_path / "out"
    (folder / "shards").mkdir(parents=True)
    digest = hashlib.sha256()
    with open(folder / "shards" / "shard-00000.parquet", "wb") as handle:
        block = bytes(range(256)) * 4096
        for _ in range(payload_size // len(block)):
            handle.write(block)
            digest.update(block)
    (folder / "manifest.json").write_text(
        json.dumps({"shards": [{"path": "shards/shard-00000.parquet", "sha256": digest.hexdigest()}]})
    )
    repository = _repository(lakefs_server)
    tracemalloc.start()
    try:
        repository.commit_output(folder, "main", "64 MB")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # includes the in-process server; a buffered upload would need 64 MB+
    assert repository.files("main")["shards/shard-00000.parquet"]["size"] == payload_size


def test_the_servers_documented_errors_are_what_the_backend_reads(lakefs_server):
    import lakefs_sdk
    from lakefs_sdk.exceptions import ApiException, NotFoundException, UnauthorizedException

    from curate.versions.lakefs import _Context

    repository = _repository(lakefs_server)
    with pytest.raises(NotFoundException):
        repository.objects.stat_object(repository.repo, "main", "missing")
    with pytest.raises(ApiException) as invalid:
        repository.branches_api.create_branch(
            repository.repo, lakefs_sdk.BranchCreation(name="runs/x", source="main")
        )
    assert invalid.value.status == 400  # lakeFS branch ids match ^\w[-\w]*$: no '/'
    url = repository._url("repositories", repository.repo, "branches", "main", "objects", path="a.txt")
    headers = {"Content-Type": "application/octet-stream", "If-None-Match": "*"}
    created = repository._raw("POST", url, _Context("up"), body=b"one", headers=headers).read()
    assert json.loads(created)["size_bytes"] == 3
    with pytest.raises(CurateError, match=r"uploading failed \(412: path already exists\)"):
        repository._raw("POST", url, _Context("uploading"), body=b"two", headers=headers)
    bad = _repository(lakefs_server, secret_access_key="nope")
    with pytest.raises(UnauthorizedException):
        bad.repositories.get_repository(bad.repo)


def test_a_key_without_permissions_is_refused_with_a_line_naming_it(lakefs_server, tmp_path):
    repository = _repository(lakefs_server)
    key, secret = lakefs_server.create_user_without_permissions(f"reader-{uuid.uuid4().hex[:6]}")
    outsider = LakeFSRepository(repository.repo, Credentials(lakefs_server.endpoint, key, secret))
    with pytest.raises(CurateError) as refused:
        outsider.commit_output(_output(tmp_path / "out", b"x"), "main", "not allowed")
    message = str(refused.value)
    # lakeFS refuses a known key without the permission with 401 "insufficient permissions" (not 403)
    assert f"access key {key} may not do this (401: insufficient permissions)" in message
    assert secret not in message
    assert repository.log("main")[0].message == "Repository created"


def test_a_run_into_a_missing_repository_fails_before_it_starts(lakefs_env, tmp_path, capsys, jsonl_file):
    from curate.cli import main

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"input: [{jsonl_file}]\n"
        f"output: {{path: {tmp_path / 'out'}, dataset: 'lakefs://no-such-repo', branch: main}}\n"
    )
    assert main(["run", str(recipe), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"lakefs://no-such-repo: no such repository at {lakefs_env.endpoint}" in err
    assert not (tmp_path / "out" / "stats.json").exists()


def test_repo_flag_names_the_repository_of_bare_refs(lakefs_env, tmp_path, capsys):
    from curate.cli import main

    repository = _repository(lakefs_env)
    repository.commit_output(
        _output(tmp_path / "out", b"flag"), "main", "via flag", {"stats": {"documents_kept": 1}}
    )
    assert main(["versions", "log", "--repo", repository.name, "main"]) == 0
    assert "kept 1" in capsys.readouterr().out
    assert main(["versions", "--repo", repository.name, "log", "main"]) == 0  # before the action too
    assert "kept 1" in capsys.readouterr().out
    assert main(["versions", "list", "--repo", repository.name]) == 0
    assert capsys.readouterr().out.startswith(f"{repository.name}: branches main=")


def test_versions_gc_shows_the_repositorys_lakefs_gc_rules(lakefs_env, capsys):
    import lakefs_sdk

    from curate.cli import main

    repository = _repository(lakefs_env)
    assert main(["versions", "gc", "--repo", repository.name]) == 0
    assert (
        capsys.readouterr().out
        == f"{repository.name}: no GC rules; lakeFS keeps every version (set them: lakectl gc set-config)\n"
    )
    rules = {"default_retention_days": 21, "branches": [{"branch_id": "main", "retention_days": 90}]}
    repository.repositories.set_gc_rules(repository.repo, lakefs_sdk.GarbageCollectionRules.from_dict(rules))
    assert repository.gc_rules() == {"default": 21, "branches": {"main": 90}}
    assert main(["versions", "gc", "--repo", repository.name]) == 0
    assert capsys.readouterr().out == f"{repository.name}: lakeFS GC keeps commits 21 days; main 90 days\n"
    assert main(["versions", "gc", "--repo", repository.name, "--apply"]) == 2
    assert "lakeFS removes garbage itself" in capsys.readouterr().err


ODD_PATHS = ["documents/a b.parquet", "notes/ünïcode ✓.txt", "weird/#hash?q=1&x=2.txt", "pct/100%+50%.txt"]


def test_odd_object_paths_commit_list_read_and_check_out(lakefs_server, tmp_path):
    repository = _repository(lakefs_server)
    folder = _output(tmp_path / "out", b"shard")
    for index, path in enumerate(ODD_PATHS):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(f"file {index}")
    version = repository.commit_output(folder, "main", "odd names")
    assert set(ODD_PATHS) <= set(repository.files(version.id))
    for index, path in enumerate(ODD_PATHS):
        with repository.open("main", path) as handle:
            assert handle.read() == f"file {index}".encode()
    out = repository.checkout("main", tmp_path / "co")
    assert all((out / path).read_text() == f"file {index}" for index, path in enumerate(ODD_PATHS))
    (folder / ODD_PATHS[2]).unlink()
    repository.commit_output(folder, "main", "one fewer")
    assert repository.diff(version.id, "main")["removed"] == [ODD_PATHS[2]]


@pytest.mark.parametrize("name", ["feat.x", "runs/x", "-lead", "sp ace", "100%"])
def test_a_branch_name_lakefs_refuses_is_one_line_naming_it(lakefs_server, name):
    repository = _repository(lakefs_server)
    with pytest.raises(CurateError) as refused:
        repository.branch(name, "main")
    message = str(refused.value)
    assert f"creating branch {name} from {repository.name}@main failed (400: " in message
    assert "branch id must consist of letters, digits, underscores and dashes" in message  # lakeFS's words
    assert "\n" not in message and set(repository.branches()) == {"main"}


def test_the_deploy_commands_run_as_written(lakefs_server, servers, tmp_path):
    """deploy/lakefs/README.md's checked block, with this server's endpoint and keys, on a new repository."""
    import os
    import re
    import subprocess
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "deploy" / "lakefs" / "README.md").read_text()
    block = re.search(r"<!-- checked: begin -->\n```bash\n(.*?)```\n<!-- checked: end -->", readme, re.S)
    assert block, "deploy/lakefs/README.md lost its checked block"
    name = f"deploy-{uuid.uuid4().hex[:8]}"
    lakefs_server.create_repository(name)
    script = block.group(1).replace("lakefs://web", f"lakefs://{name}")
    values = {
        "LAKEFS_ENDPOINT": lakefs_server.endpoint,
        "LAKEFS_ACCESS_KEY_ID": lakefs_server.access_key_id,
        "LAKEFS_SECRET_ACCESS_KEY": f"'{lakefs_server.secret_access_key}'",
    }
    for variable, value in values.items():
        script, count = re.subn(rf"^export {variable}=.*$", f"export {variable}={value}", script, flags=re.M)
        assert count == 1, variable
    _output(tmp_path / "out-a", b"a" * 100)
    _output(tmp_path / "out-b", b"b" * 100)
    env = {**os.environ, "PATH": f"{servers.bin}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "v1" / "shards" / "shard-00000.parquet").read_bytes() == b"b" * 100
    assert f"lakefs://{name}@main -> " in done.stdout and "no GC rules" in done.stdout


def test_every_listing_follows_lakefs_pagination(lakefs_server, tmp_path, monkeypatch):
    import curate.versions.lakefs as backend

    monkeypatch.setattr(backend, "PAGE", 2)  # pages of two: each listing below needs several
    repository = _repository(lakefs_server)
    folder = _output(tmp_path / "out", b"p")
    for index in range(5):
        (folder / f"part-{index}.txt").write_text(str(index))
    first = repository.commit_output(folder, "main", "seven files")
    assert len(repository.files("main")) == 8  # shard, stats, manifest and five parts
    for index in range(3):
        repository.branch(f"b{index}", "main")
        repository.tag(f"t{index}", "main")
    assert set(repository.branches()) == {"main", "b0", "b1", "b2"} and len(repository.tags()) == 3
    for index in range(5):
        (folder / f"part-{index}.txt").unlink()
    repository.commit_output(folder, "main", "parts removed, two per request")
    assert repository.diff(first.id, "main")["removed"] == [f"part-{index}.txt" for index in range(5)]
    assert set(repository.files("main")) == {"shards/shard-00000.parquet", "stats.json", "manifest.json"}

"""The lakeFS backend end to end on a live server: the session's lakeFS server (built from source), or
your own when LAKEFS_ENDPOINT is set (with LAKEFS_ACCESS_KEY_ID / LAKEFS_SECRET_ACCESS_KEY), in the
repository named by CURATE_LAKEFS_TEST_REPO (default ``curate-test``, which must exist), on branches of
its own, so it never touches anything else there.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest

from curate.core.errors import CurateError
from curate.versions import resolve_data
from curate.versions.lakefs import LakeFSRepository


@pytest.fixture
def live_repository(request, monkeypatch) -> LakeFSRepository:
    if os.environ.get("LAKEFS_ENDPOINT"):  # a server of yours
        return LakeFSRepository(os.environ.get("CURATE_LAKEFS_TEST_REPO", "curate-test"))
    server = request.getfixturevalue("lakefs_env")
    name = f"curate-test-{uuid.uuid4().hex[:8]}"
    server.create_repository(name)
    return LakeFSRepository(name)


def _output(folder, payload: bytes, kept: int):
    (folder / "shards").mkdir(parents=True)
    (folder / "shards" / "shard-00000.parquet").write_bytes(payload)
    (folder / "stats.json").write_text(json.dumps({"documents_kept": kept, "stages": {}}))
    sha = hashlib.sha256(payload).hexdigest()
    (folder / "manifest.json").write_text(
        json.dumps({"shards": [{"path": "shards/shard-00000.parquet", "sha256": sha}]})
    )
    return folder


def test_commit_log_diff_checkout_tag_merge_on_a_live_server(live_repository, tmp_path):
    repository = live_repository
    default = repository.repository().default_branch
    suffix = uuid.uuid4().hex[:8]
    first, second = f"curate-test-{suffix}-a", f"curate-test-{suffix}-b"
    repository.branch(first, default)
    one = repository.commit_output(_output(tmp_path / "one", b"one" * 1000, 1), first, "one", {"stats": {}})
    repository.branch(second, first)
    two = repository.commit_output(_output(tmp_path / "two", b"two" * 999, 2), second, "two", {"stats": {}})
    assert [v.id for v in repository.log(second, 2)] == [two.id, one.id]
    diff = repository.diff(first, second)
    assert "shards/shard-00000.parquet" in diff["changed"]
    assert diff["stats"]["documents_kept"]["delta"] == 1
    repository.tag(f"curate-test-{suffix}", first)
    out = repository.checkout(f"curate-test-{suffix}", tmp_path / "co")
    assert (out / "shards" / "shard-00000.parquet").read_bytes() == b"one" * 1000
    remote = resolve_data(f"{repository.name}/{second}") / "shards" / "shard-00000.parquet"
    assert remote.read_bytes() == b"two" * 999
    merged = repository.merge(second, first)
    assert repository.resolve(first).id == merged.id
    with pytest.raises(CurateError, match="no such branch, tag or commit"):
        repository.log(f"no-such-ref-{suffix}")

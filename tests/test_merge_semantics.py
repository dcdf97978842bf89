"""One table of three-way merges, run against both backends: the embedded store and a real lakeFS server.

The expected results are lakeFS's documented merge (docs "Merge" / graveler): the merge base is the best
common ancestor as git-merge-base defines it (one that is no ancestor of another common ancestor), found
by walking both histories by generation; a path changed on one side only takes that side's version;
changed differently on both (including deleted on one side, changed on the other) is a conflict and the
destination does not move, unless a strategy (source-wins, dest-wins) picks a side; a source that adds
nothing to the destination leaves it as it is. Objects are compared by content (lakeFS: size and ETag).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from curate.core.errors import CurateError
from curate.versions.base import VersionStore
from curate.versions.embedded import EmbeddedRepository, LocalStore
from curate.versions.lakefs import Credentials, LakeFSRepository

Files = dict[str, str]


class Story:
    """Branches written as whole trees (each commit is an output folder), then merged."""

    def __init__(self, repository: VersionStore, folders: Path):
        self.repository, self.folders = repository, folders

    def commit(self, branch: str, files: Files) -> str:
        folder = self.folders / uuid.uuid4().hex
        for path, text in files.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
        (folder / "manifest.json").write_text('{"shards": []}')  # the same in every commit: never a conflict
        return self.repository.commit_output(folder, branch, f"{branch}: {sorted(files.items())}").id

    def branch(self, new: str, source: str) -> None:
        self.repository.branch(new, source)

    def merge(self, source: str, destination: str, strategy: str | None = None) -> str:
        return self.repository.merge(source, destination, strategy=strategy).id

    def tree(self, ref: str) -> Files:
        repository = self.repository
        paths = set(repository.files(ref)) - {"manifest.json"}
        return {p: repository.open(ref, p).read().decode() for p in paths}


def _diverged(base: Files, source: Files, destination: Files) -> Callable[[Story], None]:
    """main at ``base``; branch src from it; then src and main each commit their tree."""

    def build(story: Story) -> None:
        story.commit("main", base)
        story.branch("src", "main")
        story.commit("src", source)
        story.commit("main", destination)

    return build


def _best_common_ancestor(story: Story) -> None:
    """src merged a branch `other` that holds main's later commit m1; the nearest common ancestor of src
    and main (x, one step from src's first commit) is older than the best one (m1, reached through the
    merge). From m1, f is unchanged on src and changed on main: no conflict. From x it would be one."""
    story.commit("main", {"f": "0"})  # x
    story.branch("src", "main")
    story.commit("main", {"f": "1"})  # m1
    story.branch("other", "main")
    story.commit("other", {"f": "1", "o": "1"})
    story.commit("other", {"f": "1", "o": "2"})
    story.commit("src", {"f": "0", "s": "1"})
    story.merge("other", "src")  # src: f=1 (from m1), o=2, s=1
    story.commit("main", {"f": "2"})  # m2


def _already_merged(story: Story) -> None:
    story.commit("main", {"a": "1"})
    story.branch("src", "main")
    story.commit("src", {"a": "2"})
    story.merge("src", "main")
    story.commit("main", {"a": "2", "b": "1"})


def _destination_not_moved(story: Story) -> None:
    story.commit("main", {"a": "1", "b": "1"})
    story.branch("src", "main")
    story.commit("src", {"a": "2", "c": "1"})


CONFLICT = "conflict"
# (name, history, strategy, the destination's files after merging src into main, or CONFLICT)
CASES = [
    ("each side changed its own path",
     _diverged({"a": "1", "b": "1"}, {"a": "2", "b": "1"}, {"a": "1", "b": "2"}), None, {"a": "2", "b": "2"}),
    ("both changed one path differently", _diverged({"a": "1"}, {"a": "2"}, {"a": "3"}), None, CONFLICT),
    ("source-wins resolves it", _diverged({"a": "1", "b": "1"}, {"a": "2", "b": "1"}, {"a": "3", "b": "2"}),
     "source-wins", {"a": "2", "b": "2"}),
    ("dest-wins resolves it", _diverged({"a": "1", "b": "1"}, {"a": "2", "b": "2"}, {"a": "3", "b": "1"}),
     "dest-wins", {"a": "3", "b": "2"}),
    ("both changed one path the same way", _diverged({"a": "1"}, {"a": "2"}, {"a": "2"}), None, {"a": "2"}),
    ("deleted on the source, unchanged on the destination",
     _diverged({"a": "1", "b": "1"}, {"b": "1"}, {"a": "1", "b": "2"}), None, {"b": "2"}),
    ("deleted on one side, changed on the other",
     _diverged({"a": "1", "b": "1"}, {"b": "1"}, {"a": "2", "b": "1"}), None, CONFLICT),
    ("added on both sides differently", _diverged({"a": "1"}, {"a": "1", "n": "s"}, {"a": "1", "n": "d"}),
     None, CONFLICT),
    ("added on both sides the same", _diverged({"a": "1"}, {"a": "1", "n": "x"}, {"a": "2", "n": "x"}),
     None, {"a": "2", "n": "x"}),
    ("the destination did not move since the branch", _destination_not_moved, None, {"a": "2", "c": "1"}),
    ("a source merged already adds nothing", _already_merged, None, {"a": "2", "b": "1"}),
    ("the merge base is the best common ancestor, not the nearest", _best_common_ancestor, None,
     {"f": "2", "o": "2", "s": "1"}),
]  # fmt: skip


@pytest.fixture(params=["embedded", "lakefs"])
def story(request, tmp_path) -> Story:
    if request.param == "lakefs":
        server = request.getfixturevalue("lakefs_server")
        name = f"merge-{uuid.uuid4().hex[:8]}"
        server.create_repository(name)
        credentials = Credentials(server.endpoint, server.access_key_id, server.secret_access_key)
        repository: VersionStore = LakeFSRepository(name, credentials)
    else:
        repository = EmbeddedRepository("merges", LocalStore(tmp_path / "store"))
    return Story(repository, tmp_path / "folders")


@pytest.mark.parametrize(
    ("history", "strategy", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_merging_src_into_main(story, history, strategy, expected):
    history(story)
    before = story.repository.resolve("main").id
    if expected == CONFLICT:
        with pytest.raises(CurateError, match="merging src into main conflicts"):
            story.merge("src", "main", strategy)
        assert story.repository.resolve("main").id == before  # nothing moved
        return
    head = story.merge("src", "main", strategy)
    assert story.repository.resolve("main").id == head
    assert story.tree("main") == expected

"""Speed work keeps the outputs: on real crawl pages, the default recipe keeps the same documents and
rejects the others at the same stage for the same reason as the code before the per-core work
(issue 29: counts in one combine, the quality rules' early exit, batched language ID, ...).

The reference is a run of BASELINE's code on the same input, in the same environment, so the test
follows the crawl the machine builds (Debian's package versions) rather than a stored answer. In a
clone without BASELINE (a shallow one), the decisions are compared with BASELINE's recorded in
outputs_unchanged.json instead, which holds for the Debian package versions recorded with them. Raise
BASELINE (and rewrite that file: `python -m tests.test_outputs_unchanged`) only with a change that means
to alter which documents are kept or why, and say so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow

BASELINE = "22960a7"  # main before this round's per-core work
PAGES = 500  # site pages; with their mirrors, ~600 WARC records
RECORDED = Path(__file__).with_name("outputs_unchanged.json")  # BASELINE's decisions, as a digest
CORPUS_PACKAGES = ("linux-doc-6.1", "debian-handbook")  # what make_web_corpus.py builds pages from


@pytest.fixture(scope="module")
def bench_crawl(tmp_path_factory, shared_bench_script) -> Path:
    """The bench crawl's first pages (`make bench-corpus-packages` installs the sites it is built from)."""
    script = shared_bench_script("make_web_corpus.py")
    folder = tmp_path_factory.mktemp("crawl")
    done = subprocess.run(
        [sys.executable, str(script), str(folder), "--max-pages", str(PAGES), "--no-install"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        message = f"make_web_corpus.py could not build pages: {done.stderr.strip()[-300:]}"
        if os.environ.get("CI"):
            pytest.fail(message + " (make test installs its Debian packages: make bench-corpus-packages)")
        pytest.skip(message)
    return folder


def _has_baseline() -> bool:
    found = subprocess.run(["git", "cat-file", "-e", f"{BASELINE}^{{commit}}"], cwd=REPO, capture_output=True)
    return found.returncode == 0


def baseline_tree(folder: Path) -> Path:
    """BASELINE's sources (git archive), importable ahead of the editable install: curate.filters and
    curate.pipelines, which the install maps to the top-level folders, are linked into its curate/."""
    archive = subprocess.run(["git", "archive", BASELINE], cwd=REPO, capture_output=True, check=True)
    tree = folder / f"baseline-{BASELINE}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    for package in ("filters", "pipelines"):
        (tree / "curate" / package).symlink_to(Path("..") / package)
    return tree


def _package_versions() -> dict[str, str]:
    listed = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Version}\n", *CORPUS_PACKAGES], capture_output=True, text=True
    )
    return dict(line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)


def _digest(decisions: dict[str, str]) -> dict:
    lines = "".join(f"{doc}\t{decisions[doc]}\n" for doc in sorted(decisions))
    return {
        "documents": len(decisions),
        "kept": sum(d == "kept" for d in decisions.values()),
        "sha256": hashlib.sha256(lines.encode()).hexdigest(),
    }


def _run(crawl: Path, out: Path, source: Path | None) -> None:
    recipe = out.parent / f"{out.name}.yaml"
    recipe.write_text(
        yaml.safe_dump({"input": [str(crawl / "*.warc.gz")], "output": str(out), "runner": {"workers": 2}})
    )
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    done = subprocess.run(
        [sys.executable, "-m", "curate", "run", str(recipe), "--quiet"],
        cwd=source or REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _decisions(out: Path, output_rows) -> dict[str, str]:
    """Every document id -> "kept" or "<stage>: <reason>"."""
    decisions = {row["id"]: "kept" for row in output_rows(out, "documents")}
    for row in output_rows(out, "rejected"):
        assert row["id"] not in decisions, f"{row['id']} is both kept and rejected"
        decisions[row["id"]] = f"{row['stage']}: {row['reason']}"
    return decisions


def test_default_recipe_keeps_and_rejects_what_the_baseline_did(bench_crawl, tmp_path, output_rows):
    _run(bench_crawl, tmp_path / "now", None)
    now = _decisions(tmp_path / "now", output_rows)
    assert len(now) > PAGES and sum(d == "kept" for d in now.values()) > 50  # a real test

    if _has_baseline():
        _run(bench_crawl, tmp_path / "before", baseline_tree(tmp_path))
        before = _decisions(tmp_path / "before", output_rows)
        changed = {doc: (before.get(doc), now.get(doc)) for doc in before.keys() | now.keys()}
        changed = {doc: pair for doc, pair in changed.items() if pair[0] != pair[1]}
        assert not changed, f"{len(changed)} decided differently (before, now): {list(changed.items())[:10]}"
        return
    recorded = json.loads(RECORDED.read_text())
    if recorded["packages"] != _package_versions():  # another crawl: the recorded digest says nothing
        pytest.fail(
            f"{BASELINE} is not in this clone (a shallow one?) and the bench crawl's Debian packages "
            f"{_package_versions()} are not those the recorded decisions were made from "
            f"({recorded['packages']}): clone with history"
        )
    assert _digest(now) == recorded["decisions"]


if __name__ == "__main__":  # rewrite outputs_unchanged.json from a run of BASELINE's code
    import tempfile

    work = Path(tempfile.mkdtemp())
    crawl = work / "crawl"
    script = REPO.parent / "shared" / "bench" / "make_web_corpus.py"
    subprocess.run(
        [sys.executable, str(script), str(crawl), "--max-pages", str(PAGES), "--no-install"], check=True
    )
    _run(crawl, work / "before", baseline_tree(work))
    import pyarrow.parquet as pq

    def rows(out: Path, folder: str) -> list[dict]:
        return [row for f in sorted((out / folder).glob("*.parquet")) for row in pq.read_table(f).to_pylist()]

    decisions = _decisions(work / "before", rows)
    record = {
        "baseline": BASELINE,
        "pages": PAGES,
        "packages": _package_versions(),
        "decisions": _digest(decisions),
    }
    RECORDED.write_text(json.dumps(record, indent=2) + "\n")
    print(record)

"""The dedup_lines stage end to end: planted boilerplate is removed exactly, stats count it, and on the
mirrored sites of make_web_corpus.py every removed line occurs in more than K documents."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.config import parse_config
from curate.filters.dedup_text import Normalization
from curate.filters.line_dedup import unit_hash
from curate.pipelines.readers import InputConfig, read_file
from curate.run import run

NAV = "Home | Products | Blog | Contact"
FOOTER = "Copyright 2025 Example Media Group. All rights reserved."
RARE = "Sign up for our newsletter today."
ONLY_STAGE = {
    "langid": {"enabled": False},
    "quality": {"enabled": False},
    "dedup_exact": {"enabled": False},
    "dedup_minhash": {"enabled": False},
    "tokenize": {"enabled": False},
}


def _read(out: Path, sub: str) -> list[dict]:
    return [
        row for f in sorted(glob.glob(str(out / sub / "*.parquet"))) for row in pq.read_table(f).to_pylist()
    ]


def test_planted_boilerplate_is_removed_exactly_and_counted(tmp_path, jsonl_texts):
    originals = list(jsonl_texts[:20])
    rows, planted_lines, planted_chars = [], 0, 0
    for i, text in enumerate(originals):
        lines = [text]
        if i < 12:
            lines.insert(0, NAV)
            planted_lines, planted_chars = planted_lines + 1, planted_chars + len(NAV)
        if i % 2 == 0:
            lines.append(FOOTER)
            planted_lines, planted_chars = planted_lines + 1, planted_chars + len(FOOTER)
        if i in (3, 4, 5):
            lines.append(RARE)  # in 3 documents: not more than max_docs, stays
        rows.append({"id": f"d{i:02d}", "text": "\n".join(lines)})
    rows.append({"id": "z-nav-only", "text": f"{NAV}\nThanks!\n{FOOTER}"})
    planted_lines, planted_chars = planted_lines + 2, planted_chars + len(NAV) + len(FOOTER)
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    recipe = {
        "input": [str(source)],
        "output": str(out),
        "runner": {"workers": 1},
        "stages": {**ONLY_STAGE, "dedup_lines": {"enabled": True, "max_docs": 5, "min_chars_left": 20}},
    }
    run(parse_config(recipe), progress=False)

    kept = {row["id"]: row for row in _read(out, "documents")}
    for i, original in enumerate(originals):
        expected = original + (f"\n{RARE}" if i in (3, 4, 5) else "")
        assert kept[f"d{i:02d}"]["text"] == expected, i
    rejected = _read(out, "rejected")
    assert [(r["id"], r["stage"], r["reason"]) for r in rejected] == [
        ("z-nav-only", "dedup_lines", "boilerplate_only")
    ]
    assert kept["d00"]["dedup_lines_removed"] == 2 and kept["d01"]["dedup_lines_removed"] == 1
    assert kept["d19"]["dedup_lines_removed"] == 0 and kept["d19"]["dedup_lines_char_frac"] == 0.0
    stage = json.loads((out / "stats.json").read_text())["stages"]["dedup_lines"]
    assert stage["lines_removed"] == planted_lines
    assert stage["chars_removed"] == planted_chars
    assert stage["documents_changed"] == 12 + 4 + 1  # NAV in 0..11, FOOTER adds 12..18 even, z
    assert stage["in"] == 21 and stage["out"] == 20 and stage["rejected"] == {"boilerplate_only": 1}


@pytest.fixture(scope="module")
def mirrored_sites(tmp_path_factory, shared_bench_script) -> Path:
    script = shared_bench_script("make_web_corpus.py")
    folder = tmp_path_factory.mktemp("web")
    done = subprocess.run(
        [sys.executable, str(script), str(folder), "--max-pages", "300", "--no-install"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        message = f"make_web_corpus.py could not build pages here: {done.stderr.strip()[-200:]}"
        if os.environ.get("CI"):  # make test installs the sites' Debian packages (bench-corpus-packages)
            pytest.fail(message)
        pytest.skip(message)
    return folder


def test_removed_lines_of_mirrored_sites_all_occur_in_more_than_k_documents(mirrored_sites, tmp_path):
    k = 4
    out = tmp_path / "out"
    recipe = {
        "input": [str(mirrored_sites / "*.warc.gz")],
        "output": str(out),
        "runner": {"workers": 1},
        "stages": {**ONLY_STAGE, "dedup_lines": {"enabled": True, "max_docs": k, "min_chars_left": 0}},
    }
    run(parse_config(recipe), progress=False)

    # The extracted text before the stage, recomputed here with the extractor the stage ran after.
    from curate.filters.html_extract import extract_main_text

    normalization = Normalization()
    before: dict[str, list[str]] = {}
    for path in sorted(glob.glob(str(mirrored_sites / "*.warc.gz"))):
        for doc in read_file(path, InputConfig()):
            if doc.get("html") is not None:
                before[doc["id"]] = extract_main_text(doc["html"], doc.get("charset"), "resiliparse").split(
                    "\n"
                )
    holders = Counter(
        h for lines in before.values() for h in {unit_hash(line, normalization) for line in lines} - {None}
    )
    kept = _read(out, "documents")
    removed_total = 0
    for row in kept:
        removed = Counter(before[row["id"]]) - Counter(row["text"].split("\n"))
        assert sum(removed.values()) == row["dedup_lines_removed"]
        for line in removed:
            assert holders[unit_hash(line, normalization)] > k, line
        removed_total += sum(removed.values())
    assert removed_total > 100  # mirrored sites share navigation: the stage really removed boilerplate
    stats = json.loads((out / "stats.json").read_text())["stages"]["dedup_lines"]
    assert stats["lines_removed"] == removed_total


def test_keep_first_leaves_the_smallest_id_its_copy():
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.util import assert_that, equal_to

    from curate.pipelines.line_dedup import DedupLinesConfig, LineDedup

    docs = [
        {"id": f"d{i}", "text": f"{NAV}\nOwn text of page {'abcdef'[i]}, unlike the others."}
        for i in range(6)
    ]
    stage = LineDedup(
        "dedup_lines", DedupLinesConfig(enabled=True, max_docs=3, keep_first=True, min_chars_left=0)
    )
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        kept, rejected = pipeline | beam.Create(docs) | stage
        expected = [("d0", docs[0]["text"])] + [(d["id"], d["text"].split("\n")[1]) for d in docs[1:]]
        assert_that(kept | beam.Map(lambda d: (d["id"], d["text"])), equal_to(expected))
        assert_that(rejected, equal_to([]), label="none rejected")

"""Damaged input files cost their damaged records only (issue cases 1, 2, 3, 8, 10, 11).

One `curate run` reads every damaged file at once (tests/robustness/conftest.py). For each file: the run
succeeds, the console names the file, every record is kept or rejected (counted from the bytes written,
not from curate's stats), and each rejection says where the damage is.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

DAMAGED = [
    "bad-byte.jsonl",  # case 1: one bad byte on line 901 of 1,000
    "three.jsonl",  # case 1: a bad middle line of three
    "members.jsonl.gz",  # case 1: a damaged middle gzip member
    "garbage.warc",  # case 2: plain WARC with garbage after the 15th response
    "surrogate.jsonl",  # case 3: a lone surrogate in one line
    "not-zstd.jsonl.zst",  # case 3: a .zst file that is not zstd
    "huge.jsonl",  # case 8: a document over input.max_document_bytes
    "groups.parquet",  # case 10: a Parquet row group of 4 rows that cannot be decoded
    "hostile.warc",  # issue 22 items 2, 3: chunked+gzip responses, a Content-Length past the next record
    "deep.jsonl",  # issue 22 item 4: a line nested 100,000 levels deep
]


def test_the_run_succeeds_and_balances(damaged_run):
    assert damaged_run.result.returncode == 0, damaged_run.result.stderr[-2000:]
    stats = json.loads((damaged_run.out / "stats.json").read_text())
    assert stats["balanced"] is True
    assert len(damaged_run.kept) + len(damaged_run.rejected) == stats["documents_read"]
    written = sum(i.records + i.regions for i in damaged_run.inputs.values())
    assert stats["documents_read"] == written


@pytest.mark.parametrize("name", DAMAGED)
def test_every_record_of_a_damaged_file_is_kept_or_rejected(damaged_run, name):
    item = damaged_run.inputs[name]
    kept, rejected = damaged_run.rows_of(name)
    assert len(kept) + len(rejected) == item.records + item.regions


@pytest.mark.parametrize("name", DAMAGED)
def test_the_console_names_each_damaged_file_on_one_line(damaged_run, name, console_lines_naming):
    item = damaged_run.inputs[name]
    lines = console_lines_naming(damaged_run.result.stderr, item.path)
    assert len(lines) == 1, damaged_run.result.stderr[-3000:]
    assert "record(s) not read" in lines[0] and item.problems[0].split(":")[0] in lines[0]


@pytest.mark.parametrize("name", DAMAGED)
def test_read_rejections_say_where_the_damage_is(damaged_run, name):
    item = damaged_run.inputs[name]
    _, rejected = damaged_run.rows_of(name)
    errors = [row["read_error"] for row in rejected if row.get("stage") == "read"]
    assert errors and all(error.startswith(f"{item.path}: ") for error in errors)
    for problem in item.problems:
        assert any(problem in error for error in errors), (problem, errors)


def test_a_bad_byte_costs_its_line_only(damaged_run):
    kept, rejected = damaged_run.rows_of("bad-byte.jsonl")
    (bad,) = [row for row in rejected if row.get("stage") == "read"]
    assert bad["reason"] == "unreadable" and ": line 901: " in bad["read_error"]
    survivors = {row["id"] for row in kept + rejected if row.get("stage") != "read"}
    # every other line was read, including the ones after the bad one
    assert survivors == {f"bad-byte-{i}" for i in range(1000) if i != 900}


def test_a_damaged_gzip_member_costs_that_member_only(damaged_run):
    kept, rejected = damaged_run.rows_of("members.jsonl.gz")
    start, end = damaged_run.gzip_member
    (lost,) = [row for row in rejected if row.get("stage") == "read"]
    assert f": bytes {start}-{end}: damaged gzip member" in lost["read_error"]
    read = {row["id"] for row in kept + rejected if row.get("stage") != "read"}
    assert read == {f"gz-{i}" for i in range(100) if not 40 <= i < 50}


def test_plain_warc_resumes_at_the_next_record_after_garbage(damaged_run):
    kept, rejected = damaged_run.rows_of("garbage.warc")
    documents = [row for row in kept + rejected if row.get("stage") != "read"]
    assert len(documents) == 22  # all responses, the seven after the garbage too
    assert len({row["url"] for row in documents}) == 22


def test_a_file_that_is_not_zstd_is_one_rejection_and_other_files_still_produce(damaged_run):
    kept, rejected = damaged_run.rows_of("not-zstd.jsonl.zst")
    assert kept == [] and len(rejected) == 1
    assert "not a zstd file" in rejected[0]["read_error"]
    assert len(damaged_run.kept) > 0


def test_a_lone_surrogate_costs_its_line_only(damaged_run):
    kept, rejected = damaged_run.rows_of("surrogate.jsonl")
    ids = {row["id"] for row in kept + rejected if row.get("stage") != "read"}
    assert ids == {"sur-0", "sur-1", "sur-3", "sur-4"}


def test_an_oversized_document_is_rejected_too_large_without_its_text(damaged_run):
    kept, rejected = damaged_run.rows_of("huge.jsonl")
    (big,) = [row for row in rejected if row.get("stage") == "read"]
    assert big["reason"] == "too_large" and big["text"] == ""
    assert {row["id"] for row in kept + rejected if row.get("stage") != "read"} == {"huge-0", "huge-2"}


def test_an_undecodable_parquet_row_group_counts_each_of_its_rows(damaged_run):
    kept, rejected = damaged_run.rows_of("groups.parquet")
    lost = sorted(row["read_error"].split(": ")[1] for row in rejected if row.get("stage") == "read")
    assert lost == ["row 10", "row 11", "row 8", "row 9"]


def test_trafilatura_extracts_the_warc_pages(damaged_run):
    kept, rejected = damaged_run.rows_of("garbage.warc")
    extracted = [row for row in kept + rejected if row["text"]]
    assert len(extracted) >= 15
    assert all("<html" not in row["text"].lower() for row in extracted)


def test_a_plain_warc_keeps_chunked_gzip_pages_and_loses_only_the_overlong_record(damaged_run):
    kept, rejected = damaged_run.rows_of("hostile.warc")
    (lost,) = [row for row in rejected if row.get("stage") == "read"]
    assert "runs past the next record" in lost["read_error"]
    assert len(kept) + len(rejected) == damaged_run.inputs["hostile.warc"].records
    assert not any("WARC/1." in (row.get("text") or "") for row in kept)  # no record swallowed another


def test_deeply_nested_json_costs_its_line_only(damaged_run):
    kept, rejected = damaged_run.rows_of("deep.jsonl")
    errors = [row["read_error"] for row in rejected if row.get("stage") == "read"]
    assert len(kept) + len(rejected) == 40 and len(errors) == 2
    assert any(": line 7: JSON nested deeper" in e for e in errors)
    assert any(": line 21: JSON nested deeper" in e for e in errors)

"""Readers on the real crawl samples: record counts, ids, metadata, and damaged files."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from curate.core.errors import CurateError
from curate.pipelines.readers import InputConfig, detect_format, read_file, record_ranges


def _split(docs):
    kept = [d for d in docs if "reason" not in d]
    return kept, [d for d in docs if "reason" in d]


def test_warc_yields_http_responses_with_clean_urls(crawl_file):
    docs, bad = _split(list(read_file(str(crawl_file), InputConfig())))
    assert len(docs) == 22 and bad == []  # 22 responses; requests, metadata and wget logs are skipped
    assert all(d["url"].startswith("http") and "<" not in d["url"] for d in docs)
    assert len({d["id"] for d in docs}) == 22
    assert all(d["html"] and d["metadata"]["warc_record_id"].startswith("<urn:uuid:") for d in docs)


def test_warc_decodes_chunked_transfer_encoding(shared_path):
    path = shared_path("crawl", "web-sample-0001.warc.gz")
    docs = list(read_file(str(path), InputConfig()))
    page = next(d for d in docs if "cc-joins-civil-society" in d["url"])
    assert page["html"].lstrip().lower().startswith(b"<!doctype html")


def test_wet_yields_conversion_text(shared_path):
    path = shared_path("crawl", "cc-main-2024-22-whirlwind.warc.wet.gz")
    (doc,) = list(read_file(str(path), InputConfig()))
    assert doc["url"].startswith("https://an.wikipedia.org/")
    assert "Wikipedia" in doc["text"] and "html" not in doc


def test_jsonl_gz_keeps_fields_as_metadata(jsonl_file, jsonl_rows):
    docs, bad = _split(list(read_file(str(jsonl_file), InputConfig())))
    assert bad == [] and len(docs) == len(jsonl_rows)
    assert [d["text"] for d in docs] == [r["text"] for r in jsonl_rows]
    assert docs[0]["id"] == str(jsonl_rows[0]["id"])
    assert set(docs[0]["metadata"]) == set(jsonl_rows[0]) - {"id", "text"}


def test_ids_are_derived_stably_when_missing(tmp_path):
    path = tmp_path / "docs.jsonl.zst"
    rows = [{"url": "https://a.example/1", "text": "one"}, {"body": "two", "url": None}]
    path.write_bytes(
        zstandard.ZstdCompressor().compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    )
    cfg = InputConfig(text_field="text")
    first, bad = _split(list(read_file(str(path), cfg)))
    assert len(first) == 1 and bad[0]["read_error"].endswith(
        "line 2: field 'text' is missing or not a string"
    )
    again, _ = _split(list(read_file(str(path), cfg)))
    assert first[0]["id"] == again[0]["id"] and len(first[0]["id"]) == 32


def test_parquet_rows_become_documents(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(
        pa.table({"doc_id": ["a", "b"], "body": ["first text", "second text"], "lang": ["en", "fr"]}), path
    )
    cfg = InputConfig(id_field="doc_id", text_field="body")
    docs = list(read_file(str(path), cfg))
    assert [(d["id"], d["text"], d["metadata"]) for d in docs] == [
        ("a", "first text", {"lang": "en"}),
        ("b", "second text", {"lang": "fr"}),
    ]


@pytest.mark.parametrize(
    ("sample", "keep", "records", "where", "says"),
    [
        pytest.param(
            ("crawl", "web-sample-0000.warc.gz"), lambda n: n // 2, 22, "byte", "truncated", id="warc"
        ),
        pytest.param(
            ("jsonl", "cc_en_head-0174.jsonl.gz"), lambda n: n - 200, 10, "line", "truncated", id="jsonl-gz"
        ),
    ],
)
def test_truncated_file_keeps_readable_records_and_reports_where(
    shared_path, tmp_path, sample, keep, records, where, says
):
    data = shared_path(*sample).read_bytes()
    path = tmp_path / f"cut-{sample[-1]}"
    path.write_bytes(data[: keep(len(data))])
    docs, bad = _split(list(read_file(str(path), InputConfig())))
    assert 0 < len(docs) < records
    (error,) = bad
    assert error["reason"] == "unreadable" and error["stage"] == "read"
    assert error["read_error"].startswith(f"{path}: {where} ") and says in error["read_error"]


def test_corrupt_gzip_member_is_skipped_and_reading_resumes(crawl_file, tmp_path):
    data = bytearray(crawl_file.read_bytes())
    data[len(data) // 4 : len(data) // 4 + 64] = b"\x00" * 64
    path = tmp_path / "bad.warc.gz"
    path.write_bytes(bytes(data))
    docs, bad = _split(list(read_file(str(path), InputConfig())))
    assert len(bad) == 1 and "corrupt record" in bad[0]["read_error"]
    assert len(docs) >= 20  # records after the damage are read again: at most one page is lost


def _ranges(path, max_bytes):
    with open(path, "rb") as raw:
        return record_ranges(raw, str(path), path.stat().st_size, max_bytes)


def test_a_big_warc_read_in_byte_ranges_yields_every_record_once(crawl_file):
    whole = [d["id"] for d in read_file(str(crawl_file), InputConfig())]
    size = crawl_file.stat().st_size
    ranges = _ranges(crawl_file, size // 4)
    assert len(ranges) >= 4 and ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a < b == c for (a, b), (c, _) in zip(ranges, ranges[1:], strict=False))
    # Cuts land on records: each range starts with a gzip member, and is at most about the limit.
    data = crawl_file.read_bytes()
    assert all(data[a : a + 2] == b"\x1f\x8b" for a, _ in ranges)
    pieces = [[d["id"] for d in read_file(str(crawl_file), InputConfig(), r)] for r in ranges]
    assert sum(1 for piece in pieces if piece) >= 4 and [i for piece in pieces for i in piece] == whole
    assert _ranges(crawl_file, size) is None  # small enough: not cut


def test_byte_ranges_keep_damage_to_the_range_that_holds_it(crawl_file, tmp_path):
    data = bytearray(crawl_file.read_bytes())
    data[len(data) // 4 : len(data) // 4 + 64] = b"\x00" * 64
    path = tmp_path / "bad.warc.gz"
    path.write_bytes(bytes(data))
    whole = list(read_file(str(path), InputConfig()))
    ranges = _ranges(path, len(data) // 3)
    pieces = [list(read_file(str(path), InputConfig(), r)) for r in ranges]
    assert [d["id"] for piece in pieces for d in piece] == [d["id"] for d in whole]
    assert sum(1 for piece in pieces for d in piece if "reason" in d) == 1


def test_only_gzip_per_record_warc_files_are_cut(tmp_path, jsonl_file):
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(b"{}\n" * 1000)
    assert _ranges(plain, 100) is None
    assert _ranges(jsonl_file, 100) is None


def test_a_warc_reader_that_stops_early_without_an_error_is_resumed(crawl_file, monkeypatch):
    import itertools

    import fastwarc.warc

    whole = [d["id"] for d in read_file(str(crawl_file), InputConfig())]
    real = fastwarc.warc.ArchiveIterator
    # FastWARC ending after 10 records, as if the file ended there (seen once inside a Beam worker).
    monkeypatch.setattr(fastwarc.warc, "ArchiveIterator", lambda *a, **k: itertools.islice(real(*a, **k), 10))
    docs, bad = _split(list(read_file(str(crawl_file), InputConfig())))
    assert [d["id"] for d in docs] == whole and bad == []


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "fine"}\n{not json\n{"text": "also fine"}\n')
    docs, bad = _split(list(read_file(str(path), InputConfig())))
    assert [d["text"] for d in docs] == ["fine", "also fine"]
    assert bad[0]["read_error"].startswith(f"{path}: line 2: ")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.warc.gz", "warc"), ("a.warc.wet.gz", "wet"), ("x.jsonl.zst", "jsonl"), ("p.parquet", "parquet")],
)
def test_format_detection(name, fmt):
    assert detect_format(f"gs://bucket/{name}") == fmt


def test_unknown_extension_asks_for_input_format():
    with pytest.raises(CurateError, match="set input.format"):
        detect_format("/data/file.bin")

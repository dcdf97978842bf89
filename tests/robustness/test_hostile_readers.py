"""Hostile crawl files, reader by reader (issue 22, items 2-6): each damaged record costs itself only,
and every record of a file comes out once, kept or rejected (`in = kept + rejected`).

The files are real records (../shared/data) changed the way an attacker or a broken crawler would.
"""

from __future__ import annotations

import codecs
import gzip
import json
from collections import Counter

import pytest
import zstandard

from curate.pipelines.readers import InputConfig, read_file


def _read(path, **cfg):
    docs = list(read_file(str(path), InputConfig(**cfg)))
    positions = Counter(d.get("position") or d["read_error"] for d in docs)
    assert max(positions.values(), default=1) == 1, positions.most_common(2)  # nothing comes out twice
    return [d for d in docs if "reason" not in d], [d for d in docs if "reason" in d]


@pytest.fixture(scope="module")
def clueweb(shared_path, warc_kit):
    """The 29-response ClueWeb sample's records (request, response, metadata ...)."""
    return warc_kit.sample_records(shared_path, "clueweb-quirk.warc.gz")


def _responses(records, warc_kit):
    return [i for i, record in enumerate(records) if warc_kit.warc_type(record) == "response"]


@pytest.mark.parametrize("compress", [False, True], ids=["warc", "warc.gz"])
@pytest.mark.parametrize("which", [[0], [1, 2], [-1]], ids=["first", "two", "last"])
def test_chunked_gzip_responses_are_decoded_and_later_records_still_read(
    clueweb, warc_kit, tmp_path, compress, which
):
    records = list(clueweb)
    responses = _responses(records, warc_kit)
    for k in which:
        records[responses[k]] = warc_kit.chunked_gzip(records[responses[k]], chunk=211)
    path = tmp_path / ("pages.warc.gz" if compress else "pages.warc")
    path.write_bytes(b"".join(gzip.compress(r) for r in records) if compress else b"".join(records))
    kept, bad = _read(path)
    assert bad == [] and len(kept) == len(responses)
    original, _ = _read(_write(tmp_path / "original.warc", clueweb))
    assert [d["html"] for d in kept] == [d["html"] for d in original]  # the same pages, decoded


def _write(path, records):
    path.write_bytes(b"".join(records))
    return path


@pytest.mark.parametrize("extra", [6, 700, 20_000, 10**9], ids=["6B", "700B", "20kB", "1GB"])
def test_a_content_length_past_the_next_record_costs_that_record_only(clueweb, warc_kit, tmp_path, extra):
    records = list(clueweb)
    responses = _responses(records, warc_kit)
    target = responses[4]
    header_end = records[target].index(b"\r\n\r\n") + 4
    block = len(records[target]) - header_end - 4
    records[target] = warc_kit.with_content_length(records[target], block + extra)
    kept, bad = _read(_write(tmp_path / "long.warc", records))
    assert len(kept) + len(bad) == len(responses) and len(bad) == 1
    assert "Content-Length" in bad[0]["read_error"] and "WARC/1." not in str([d["html"] for d in kept])


@pytest.mark.parametrize("short", [1, 100, 5000])
def test_a_content_length_that_falls_short_costs_that_record_only(clueweb, warc_kit, tmp_path, short):
    records = list(clueweb)
    responses = _responses(records, warc_kit)
    target = responses[7]
    header_end = records[target].index(b"\r\n\r\n") + 4
    block = len(records[target]) - header_end - 4
    records[target] = warc_kit.with_content_length(records[target], block - short)
    kept, bad = _read(_write(tmp_path / "short.warc", records))
    assert len(kept) + len(bad) == len(responses) and len(bad) == 1


@pytest.mark.parametrize("damage", ["zeros", "header"])
@pytest.mark.parametrize("compress", [False, True], ids=["warc", "warc.gz"])
def test_the_record_before_a_corrupt_one_comes_out_once(clueweb, warc_kit, tmp_path, damage, compress):
    records = list(clueweb)
    responses = _responses(records, warc_kit)
    target = responses[10]
    record = bytearray(records[target])
    if damage == "zeros":  # inside the HTTP block
        middle = len(record) // 2
        record[middle : middle + 200] = b"\x00" * 200
    else:  # the WARC header itself
        record[10:40] = b"\xff" * 30
    records[target] = bytes(record)
    if compress:
        members = [gzip.compress(r) for r in records]
        data = bytearray(b"".join(members))
        if damage == "zeros":  # damage the compressed member instead: it cannot be decompressed
            start = sum(len(m) for m in members[:target]) + len(members[target]) // 2
            data[start : start + 64] = b"\x00" * 64
        path = tmp_path / "corrupt.warc.gz"
        path.write_bytes(bytes(data))
    else:
        path = _write(tmp_path / "corrupt.warc", records)
    kept, bad = _read(path)  # _read asserts that no record comes out twice
    assert len({d["id"] for d in kept}) == len(kept)
    assert len(kept) + len(bad) == len(responses) and len(bad) <= 1


def _jsonl_lines(shared_path, count):
    with gzip.open(shared_path("jsonl", "cc_en_head-0091.jsonl.gz"), "rt", encoding="utf-8") as rows:
        texts = [json.loads(line)["text"] for line in rows]
    return [json.dumps({"id": f"doc-{i}", "text": texts[i % len(texts)]}) for i in range(count)]


def test_a_utf8_byte_order_mark_costs_nothing(shared_path, tmp_path):
    lines = _jsonl_lines(shared_path, 7)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + "\n".join(lines).encode())
    kept, bad = _read(path)
    assert bad == [] and [d["id"] for d in kept] == [f"doc-{i}" for i in range(7)]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("compress", ["", ".gz"])
def test_a_utf16_file_is_decoded(shared_path, tmp_path, encoding, compress):
    lines = _jsonl_lines(shared_path, 12)
    data = ("\r\n".join(lines) + "\r\n").encode(encoding)
    path = tmp_path / f"wide.jsonl{compress}"
    path.write_bytes(gzip.compress(data) if compress else data)
    kept, bad = _read(path)
    assert bad == [] and [d["text"] for d in kept] == [json.loads(line)["text"] for line in lines]


@pytest.mark.parametrize("ending", [b"\r", b"\r\n", b"\n"], ids=["CR", "CRLF", "LF"])
def test_every_line_ending_splits_records(shared_path, tmp_path, ending):
    lines = _jsonl_lines(shared_path, 9)
    lines[4] = '{"id": "broken"'
    path = tmp_path / "ends.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(ending.join(line.encode() for line in lines)))
    kept, bad = _read(path)
    assert len(kept) == 8 and len(bad) == 1 and ": line 5: invalid JSON" in bad[0]["read_error"]


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_a_truncated_compressed_file_says_how_many_bytes_were_lost(shared_path, tmp_path, suffix, cut):
    lines = _jsonl_lines(shared_path, 60)
    data = "\n".join(lines).encode() + b"\n"
    packed = gzip.compress(data) if suffix == ".gz" else zstandard.ZstdCompressor().compress(data)
    path = tmp_path / f"cut.jsonl{suffix}"
    path.write_bytes(packed[: int(len(packed) * cut)])
    kept, bad = _read(path)
    (lost,) = bad
    assert "truncated" in lost["read_error"] and "compressed bytes of it read" in lost["read_error"]
    assert kept == [] or kept[-1]["id"] == f"doc-{len(kept) - 1}"  # the lines before the cut

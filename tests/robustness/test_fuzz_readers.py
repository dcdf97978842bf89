"""Fuzzing the readers with mutated real records (hypothesis): whatever the bytes, a reader yields an
accounted set of records and never raises.

Two kinds of mutation, on files built from ../shared/data:
- anywhere (flip, overwrite, insert, delete, duplicate or cut bytes, compressed files included): every
  item is a well-formed document or read rejection naming the file, nothing comes out twice, and the
  reader ends;
- inside one record (same-length overwrite of a record's block or a line's bytes): the file still holds
  as many records as before, so ``kept + rejected`` equals that count exactly.

The budget is fixed and the search derandomized (same examples on every run, no example database), so CI
runs the same cases each time in a few seconds per reader.
"""

from __future__ import annotations

import gzip
import io
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.pipelines.readers import InputConfig, read_file

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WARC_RECORDS = 14  # records of the real WARC sample used (7 responses): small files, many examples
JSONL_LINES = 12


@pytest.fixture(scope="module")
def real_files(shared_path, warc_kit) -> dict[str, tuple[bytes, int]]:
    """File name -> (bytes, records it holds), for each reader and compression."""
    records = warc_kit.sample_records(shared_path, "web-sample-0000.warc.gz")[:WARC_RECORDS]
    responses = sum(1 for r in records if warc_kit.warc_type(r) == "response")
    wet = warc_kit.sample_records(shared_path, "cc-main-2024-22-whirlwind.warc.wet.gz")
    conversions = sum(1 for r in wet if warc_kit.warc_type(r) == "conversion")
    with gzip.open(shared_path("jsonl", "cc_en_head-0091.jsonl.gz"), "rt", encoding="utf-8") as rows:
        texts = [json.loads(line)["text"][:3000] for line in rows]
    lines = b"".join(
        json.dumps({"id": f"fz-{i}", "text": texts[i % len(texts)]}).encode() + b"\n"
        for i in range(JSONL_LINES)
    )
    table = pa.table(
        {
            "id": [f"pq-{i}" for i in range(JSONL_LINES)],
            "text": [texts[i % len(texts)][:500] for i in range(JSONL_LINES)],
        }
    )
    parquet = io.BytesIO()
    pq.write_table(table, parquet, row_group_size=4)
    return {
        "sample.warc": (b"".join(records), responses),
        "sample.warc.gz": (b"".join(gzip.compress(r) for r in records), responses),
        "sample.wet": (b"".join(wet), conversions),
        "sample.wet.gz": (b"".join(gzip.compress(r) for r in wet), conversions),
        "sample.jsonl": (lines, JSONL_LINES),
        "sample.jsonl.gz": (
            b"".join(gzip.compress(lines[i : i + 9000]) for i in range(0, len(lines), 9000)),
            JSONL_LINES,
        ),
        "sample.jsonl.zst": (zstandard.ZstdCompressor().compress(lines), JSONL_LINES),
        "sample.parquet": (parquet.getvalue(), JSONL_LINES),
    }


def _accounted(path: Path, data: bytes) -> tuple[list[dict], list[dict]]:
    """Read ``data`` as ``path``; check the shape of everything that comes out."""
    path.write_bytes(data)
    docs = list(read_file(str(path), InputConfig(max_document_bytes=200_000)))
    kept = [d for d in docs if "reason" not in d]
    rejected = [d for d in docs if "reason" in d]
    for doc in kept:
        assert isinstance(doc["id"], str) and doc["id"] and isinstance(doc["text"], str)
        assert doc["source"] == str(path) and doc["position"]
    for doc in rejected:
        assert doc["stage"] == "read" and doc["reason"] in ("unreadable", "too_large")
        assert doc["read_error"].startswith(f"{path}: ")
    places = Counter(d.get("position") or d["read_error"].split(": ")[1] for d in docs)
    assert max(places.values(), default=1) == 1, places.most_common(3)  # nothing comes out twice
    return kept, rejected


_MUTATION = st.tuples(
    st.sampled_from(["flip", "overwrite", "insert", "delete", "duplicate", "cut"]),
    st.floats(0, 1),
    st.binary(min_size=1, max_size=64),
)


def _mutate(data: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    out = bytearray(data)
    for kind, where, payload in mutations:
        at = int(where * max(len(out) - 1, 0))
        if kind == "flip" and out:
            out[at] ^= payload[0] or 1
        elif kind == "overwrite":
            out[at : at + len(payload)] = payload
        elif kind == "insert":
            out[at:at] = payload
        elif kind == "delete":
            del out[at : at + len(payload) * 8]
        elif kind == "duplicate":
            out[at:at] = out[at : at + len(payload) * 16]
        elif kind == "cut":
            del out[at:]
    return bytes(out)


@pytest.mark.parametrize(
    "name",
    [
        "sample.warc",
        "sample.warc.gz",
        "sample.wet",
        "sample.wet.gz",
        "sample.jsonl",
        "sample.jsonl.gz",
        "sample.jsonl.zst",
        "sample.parquet",
    ],
)
def test_any_mutation_yields_well_formed_records_and_never_raises(real_files, tmp_path, name):
    data, records = real_files[name]

    @FUZZ
    @given(st.lists(_MUTATION, min_size=1, max_size=4))
    def check(mutations):
        kept, rejected = _accounted(tmp_path / name, _mutate(data, mutations))
        assert len(kept) <= records + len(mutations) * 4  # a few bytes cannot invent many records

    check()


@pytest.mark.parametrize("name", ["sample.warc", "sample.warc.gz", "sample.wet"])
def test_a_mutation_inside_one_warc_record_costs_at_most_that_record(
    real_files, shared_path, warc_kit, tmp_path, name
):
    data, records = real_files[name]
    plain = gzip.decompress(data) if name.endswith(".gz") else data
    pieces = warc_kit.split_warc(plain)

    @FUZZ
    @given(st.integers(0, len(pieces) - 1), st.floats(0, 1), st.binary(min_size=1, max_size=48))
    def check(index, where, payload):
        record = pieces[index]
        block_start = record.index(b"\r\n\r\n") + 4
        room = len(record) - 4 - block_start - len(payload)
        if room <= 0:
            return
        at = block_start + int(where * room)
        changed = list(pieces)
        changed[index] = record[:at] + payload + record[at + len(payload) :]
        out = b"".join(gzip.compress(p) for p in changed) if name.endswith(".gz") else b"".join(changed)
        kept, rejected = _accounted(tmp_path / name, out)
        assert len(kept) + len(rejected) == records

    check()


@pytest.mark.parametrize("name", ["sample.jsonl", "sample.jsonl.gz", "sample.jsonl.zst"])
def test_a_mutation_inside_one_line_costs_at_most_that_line(real_files, tmp_path, name):
    data, records = real_files[name]
    lines = (
        gzip.decompress(data)
        if name.endswith(".gz")
        else zstandard.ZstdDecompressor().decompressobj().decompress(data)
        if name.endswith(".zst")
        else data
    ).splitlines(keepends=True)

    @FUZZ
    @given(
        st.integers(0, len(lines) - 1),
        st.floats(0, 1),
        st.binary(min_size=1, max_size=48).map(lambda b: b.replace(b"\n", b"x").replace(b"\r", b"y")),
    )
    def check(index, where, payload):
        line = lines[index]
        at = int(where * (len(line) - 1 - len(payload)))
        changed = list(lines)
        changed[index] = line[:at] + payload + line[at + len(payload) :]
        text = b"".join(changed)
        if name.endswith(".gz"):
            text = gzip.compress(text)
        elif name.endswith(".zst"):
            text = zstandard.ZstdCompressor().compress(text)
        kept, rejected = _accounted(tmp_path / name, text)
        assert len(kept) + len(rejected) == records

    check()

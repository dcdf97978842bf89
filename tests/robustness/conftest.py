"""Damaged inputs made from the real samples, and one `curate run` over all of them, shared by the tests.

Each input is a real sample file mutated the way the robustness issue found curate losing data. What each
file holds is counted here, from the bytes written, independently of curate's own stats; the tests then
check that every record comes out kept or rejected, file by file.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

FAST_STAGES = {"tokenize": {"shard_tokens": 200_000}}


def curate(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`curate ARGS...` in a fresh process (exit status and console as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=timeout
    )


def write_recipe(
    path: Path,
    inputs: list[str],
    output: Path | str,
    stages: dict | None = None,
    input_extra: dict | None = None,
    **extra,
) -> Path:
    recipe = {
        "input": {"paths": inputs, **(input_extra or {})},
        "output": str(output),
        "runner": {"name": "direct", "workers": 1},
        "stages": stages if stages is not None else FAST_STAGES,
        **extra,
    }
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def output_rows(out: Path, sub: str) -> list[dict]:
    files = sorted(glob.glob(str(out / sub / "*.parquet")))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def sample_rows(shared_path, name: str) -> list[dict]:
    with gzip.open(shared_path("jsonl", name), "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def jsonl_line(row: dict) -> bytes:
    return (json.dumps(row) + "\n").encode("utf-8")


@dataclass
class DamagedInput:
    """One mutated file: what it holds (counted here) and what curate must report about it."""

    path: Path
    records: int  # records in the file as written (for a skipped region: those outside it)
    regions: int = 0  # damaged regions that hold no countable record: one rejection each
    problems: list[str] = field(default_factory=list)  # text each expected read_error contains


def _bad_byte_jsonl(folder: Path, shared_path) -> DamagedInput:
    """1,000 lines of real text; line 901 carries a byte that is not UTF-8."""
    rows = sample_rows(shared_path, "cc_en_head-0091.jsonl.gz")
    lines = [
        jsonl_line({"id": f"bad-byte-{i}", "text": f"{rows[i % 10]['text'][:1000]} ({i})"})
        for i in range(1000)
    ]
    lines[900] = lines[900].replace(b'"text": "', b'"text": "\xff', 1)
    path = folder / "bad-byte.jsonl"
    path.write_bytes(b"".join(lines))
    return DamagedInput(path, 1000, problems=["line 901: invalid UTF-8"])


def _three_lines(folder: Path, shared_path) -> DamagedInput:
    rows = sample_rows(shared_path, "cc_en_head-0091.jsonl.gz")[:3]
    lines = [jsonl_line({"id": f"three-{i}", "text": row["text"]}) for i, row in enumerate(rows)]
    lines[1] = lines[1][:20] + b"\xc3\x28" + lines[1][20:]  # an invalid two-byte sequence
    path = folder / "three.jsonl"
    path.write_bytes(b"".join(lines))
    return DamagedInput(path, 3, problems=["line 2: invalid UTF-8"])


def _damaged_gzip_member(folder: Path, shared_path) -> tuple[DamagedInput, tuple[int, int]]:
    """100 lines in 10 gzip members (as bgzip-style writers make them); the 5th member is damaged."""
    rows = sample_rows(shared_path, "cc_en_head-0091.jsonl.gz")
    members = [
        gzip.compress(
            b"".join(
                jsonl_line({"id": f"gz-{i}", "text": rows[i % 10]["text"]})
                for i in range(m * 10, m * 10 + 10)
            )
        )
        for m in range(10)
    ]
    start = sum(len(m) for m in members[:4])
    end = start + len(members[4])
    data = bytearray(b"".join(members))
    middle = (start + end) // 2
    data[middle : middle + 32] = b"\x00" * 32
    path = folder / "members.jsonl.gz"
    path.write_bytes(bytes(data))
    return DamagedInput(path, 90, regions=1, problems=[f"bytes {start}-{end}: damaged gzip member"]), (
        start,
        end,
    )


def _surrogate(folder: Path, shared_path) -> DamagedInput:
    rows = sample_rows(shared_path, "cc_en_head-0091.jsonl.gz")[:5]
    lines = [jsonl_line({"id": f"sur-{i}", "text": row["text"]}) for i, row in enumerate(rows)]
    lines[2] = b'{"id": "sur-2", "text": "lone \\ud800 surrogate"}\n'
    path = folder / "surrogate.jsonl"
    path.write_bytes(b"".join(lines))
    return DamagedInput(path, 5, problems=["line 3: a string holds a lone UTF-16 surrogate"])


def _not_zstd(folder: Path, shared_path) -> DamagedInput:
    rows = sample_rows(shared_path, "cc_en_head-0174.jsonl.gz")[5:]
    path = folder / "not-zstd.jsonl.zst"
    path.write_bytes(b"".join(jsonl_line({"id": f"nz-{i}", "text": r["text"]}) for i, r in enumerate(rows)))
    return DamagedInput(path, 0, regions=1, problems=["not a zstd file"])


def _plain_warc_with_garbage(folder: Path, shared_path) -> DamagedInput:
    """The real 22-response WARC, uncompressed, with garbage after the 15th response."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    data = gzip.decompress(shared_path("crawl", "web-sample-0000.warc.gz").read_bytes())
    responses = [
        record.stream_pos
        for record in ArchiveIterator(
            io.BytesIO(data), record_types=WarcRecordType.response, parse_http=False
        )
    ]
    assert len(responses) == 22
    cut = responses[15]
    path = folder / "garbage.warc"
    path.write_bytes(data[:cut] + b"\x00garbage that is no WARC record\xff" * 40 + b"\r\n" + data[cut:])
    return DamagedInput(path, 22, regions=1, problems=["no WARC record starts here"])


def _parquet_bad_row_group(folder: Path, shared_path) -> DamagedInput:
    """Five row groups of 4 real documents; the third cannot be decoded."""
    rows = sample_rows(shared_path, "cc_en_head-0091.jsonl.gz")
    texts = [f"Row {i}. {rows[i % 10]['text']}" for i in range(20)]
    table = pa.table({"id": [f"pq-{i}" for i in range(20)], "text": texts})
    path = folder / "groups.parquet"
    pq.write_table(table, path, row_group_size=4, compression="zstd")
    column = pq.ParquetFile(path).metadata.row_group(2).column(1)
    data = bytearray(path.read_bytes())
    first_page = column.dictionary_page_offset or column.data_page_offset  # its page header
    data[first_page : first_page + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    return DamagedInput(path, 20, problems=["row 8: row group 2 cannot be decoded"])


def _huge_document(folder: Path, shared_path) -> DamagedInput:
    """A 9 MB document (over the default input.max_document_bytes) between two normal ones."""
    rows = sample_rows(shared_path, "cc_en_head-0091.jsonl.gz")
    huge = (rows[3]["text"] + "\n") * (9_000_000 // len(rows[3]["text"]) + 1)
    lines = [
        jsonl_line({"id": "huge-0", "text": rows[0]["text"]}),
        jsonl_line({"id": "huge-1", "text": huge}),
        jsonl_line({"id": "huge-2", "text": rows[1]["text"]}),
    ]
    path = folder / "huge.jsonl"
    path.write_bytes(b"".join(lines))
    return DamagedInput(path, 3, problems=["line 2: ", "exceed input.max_document_bytes"])


def _duplicate_ids(folder: Path, shared_path) -> list[DamagedInput]:
    """Two files numbering their rows from 0: ids 0-4 in both, for ten unrelated real documents (no other
    input holds these texts)."""
    rows = sample_rows(shared_path, "cc_en_head-0174.jsonl.gz")
    files = []
    for part, chunk in (("a", rows[:5]), ("b", rows[5:])):
        path = folder / f"rows-{part}.jsonl"
        path.write_bytes(
            b"".join(jsonl_line({"id": i, "url": r["id"], "text": r["text"]}) for i, r in enumerate(chunk))
        )
        files.append(DamagedInput(path, 5))
    return files


# -------------------------------------------------------------------------------- WARC records, by hand


def split_warc(data: bytes) -> list[bytes]:
    """An uncompressed, well-formed WARC -> its records (header, block and the blank line after it)."""
    records, start = [], 0
    while start < len(data):
        header_end = data.index(b"\r\n\r\n", start) + 4
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", data[start:header_end]).group(1))
        end = header_end + length + 4
        records.append(data[start:end])
        start = end
    return records


def warc_sample_records(shared_path, name: str) -> list[bytes]:
    return split_warc(gzip.decompress(shared_path("crawl", name).read_bytes()))


def warc_type(record: bytes) -> str:
    return re.search(rb"WARC-Type: *(\S+)", record).group(1).decode()


def with_content_length(record: bytes, length: int) -> bytes:
    """The record with another Content-Length in its WARC header (its block unchanged)."""
    header_end = record.index(b"\r\n\r\n")
    header = re.sub(
        rb"(?i)content-length: *\d+", b"Content-Length: %d" % length, record[:header_end], count=1
    )
    return header + record[header_end:]


def chunked_gzip(record: bytes, chunk: int = 997) -> bytes:
    """A response record whose HTTP payload is re-sent gzip-compressed in chunks (Transfer-Encoding:
    chunked and Content-Encoding: gzip), its WARC Content-Length fixed to match."""
    header_end = record.index(b"\r\n\r\n")
    block = record[header_end + 4 : -4]
    http_end = block.index(b"\r\n\r\n")
    payload = block[http_end + 4 :]
    if b"chunked" in block[:http_end].lower():  # already chunked: decode it first
        payload = _dechunk(payload)
    drop = (b"content-length", b"transfer-encoding", b"content-encoding")
    lines = [line for line in block[:http_end].split(b"\r\n") if not line.lower().startswith(drop)]
    packed = gzip.compress(payload)
    body = b"".join(
        b"%x\r\n%s\r\n" % (len(packed[i : i + chunk]), packed[i : i + chunk])
        for i in range(0, len(packed), chunk)
    )
    http = b"\r\n".join([*lines, b"Transfer-Encoding: chunked", b"Content-Encoding: gzip"])
    new_block = http + b"\r\n\r\n" + body + b"0\r\n\r\n"
    return with_content_length(record[: header_end + 4] + new_block + b"\r\n\r\n", len(new_block))


def _dechunk(data: bytes) -> bytes:
    out, position = [], 0
    while True:
        line_end = data.index(b"\r\n", position)
        size = int(data[position:line_end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[line_end + 2 : line_end + 2 + size])
        position = line_end + 2 + size + 2


@pytest.fixture(scope="session")
def warc_kit():
    """Helpers that build WARC files from real records: split_warc, warc_sample_records(shared_path,
    name), warc_type, with_content_length, chunked_gzip."""
    return SimpleNamespace(
        split_warc=split_warc,
        sample_records=warc_sample_records,
        warc_type=warc_type,
        with_content_length=with_content_length,
        chunked_gzip=chunked_gzip,
    )


def _hostile_plain_warc(folder: Path, shared_path) -> DamagedInput:
    """The other real WARC sample, uncompressed: two responses re-sent chunked and gzip-compressed, and
    a response whose Content-Length runs 3,000 bytes past the next record (issue 22, items 2 and 3)."""
    records = warc_sample_records(shared_path, "web-sample-0001.warc.gz")
    responses = [i for i, record in enumerate(records) if warc_type(record) == "response"]
    for i in responses[3], responses[-2]:
        records[i] = chunked_gzip(records[i])
    long = responses[len(responses) // 2]
    header_end = records[long].index(b"\r\n\r\n") + 4
    records[long] = with_content_length(records[long], len(records[long]) - header_end - 4 + 3000)
    path = folder / "hostile.warc"
    path.write_bytes(b"".join(records))
    return DamagedInput(path, len(responses), problems=["Content-Length", "runs past the next record"])


def _deep_json(folder: Path, shared_path) -> DamagedInput:
    """40 real documents (not those of the duplicate-id files); line 7 nests 100,000 lists deep, line 21
    an object 150 levels deep."""
    rows = sample_rows(shared_path, "cc_en_head-0091.jsonl.gz")
    lines = [jsonl_line({"id": f"deep-{i}", "text": rows[i % 10]["text"]}) for i in range(40)]
    lines[6] = b'{"id": "deep-6", "text": "x", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    nested = json.dumps({"id": "deep-20", "text": "y", "meta": json.loads("[" * 150 + "]" * 150)})
    lines[20] = nested.encode() + b"\n"
    path = folder / "deep.jsonl"
    path.write_bytes(b"".join(lines))
    return DamagedInput(path, 40, problems=["line 7: JSON nested deeper than"])


@dataclass
class DamagedRun:
    inputs: dict[str, DamagedInput]
    out: Path
    result: subprocess.CompletedProcess
    kept: list[dict]
    rejected: list[dict]
    gzip_member: tuple[int, int]

    def rows_of(self, name: str) -> tuple[list[dict], list[dict]]:
        source = str(self.inputs[name].path)
        return (
            [row for row in self.kept if row["source"] == source],
            [row for row in self.rejected if row["source"] == source],
        )


@pytest.fixture(scope="session")
def damaged_inputs(tmp_path_factory, shared_path) -> tuple[dict[str, DamagedInput], tuple[int, int]]:
    folder = tmp_path_factory.mktemp("damaged")
    members, member_range = _damaged_gzip_member(folder, shared_path)
    made = [
        _bad_byte_jsonl(folder, shared_path),
        _three_lines(folder, shared_path),
        members,
        _surrogate(folder, shared_path),
        _not_zstd(folder, shared_path),
        _plain_warc_with_garbage(folder, shared_path),
        _parquet_bad_row_group(folder, shared_path),
        _huge_document(folder, shared_path),
        _hostile_plain_warc(folder, shared_path),
        _deep_json(folder, shared_path),
        *_duplicate_ids(folder, shared_path),
    ]
    return {item.path.name: item for item in made}, member_range


@pytest.fixture(scope="session")
def damaged_run(damaged_inputs, tmp_path_factory) -> DamagedRun:
    """`curate run` over every damaged input at once (Trafilatura extracts the WARC's pages)."""
    inputs, member_range = damaged_inputs
    work = tmp_path_factory.mktemp("damaged-run")
    out = work / "out"
    stages = {**FAST_STAGES, "extract": {"extractor": "trafilatura"}}
    recipe = write_recipe(work / "recipe.yaml", [str(i.path) for i in inputs.values()], out, stages)
    result = curate("run", str(recipe))
    kept = output_rows(out, "documents") if result.returncode == 0 else []
    rejected = output_rows(out, "rejected") if result.returncode == 0 else []
    return DamagedRun(inputs, out, result, kept, rejected, member_range)


def lines_naming(text: str, path: Path | str) -> list[str]:
    return [line for line in text.splitlines() if str(path) in line]


def folder_contents(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes (run.log excepted: each run writes its own)."""
    return {
        os.path.relpath(p, folder): Path(p).read_bytes()
        for p in glob.glob(str(folder / "**" / "*"), recursive=True)
        if os.path.isfile(p) and not p.endswith("run.log")
    }


# Helpers for the test modules, which take them as fixtures (test modules import no conftest).


@pytest.fixture(scope="session")
def curate_cli():
    """`curate_cli("run", recipe)`: the command line in a fresh process -> CompletedProcess."""
    return curate


@pytest.fixture(name="write_recipe", scope="session")
def write_recipe_fixture():
    """`write_recipe(path, inputs, output, stages=None, input_extra=None)`: a recipe file, one worker."""
    return write_recipe


@pytest.fixture(scope="session")
def console_lines_naming():
    """`console_lines_naming(text, path)`: the lines of console output that name ``path``."""
    return lines_naming


@pytest.fixture(scope="session")
def tree_digest():
    """`tree_digest(folder)`: every file under a folder with its bytes (run.log excepted)."""
    return folder_contents

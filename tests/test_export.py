"""`curate export`: each format read back through its consumer's own reader (megatron-core, litdata,
datasets, datatrove in the project's environment; mosaicml-streaming, which pins numpy<2.2, in the side
environment `make mds-env` builds under ~/.cache/curate), document by document."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from curate import export
from curate.cli import main
from curate.core import files

MDS_ENV = Path(os.environ.get("CURATE_MDS_ENV", Path.home() / ".cache" / "curate" / "mds-venv"))


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, jsonl_files: tuple[Path, ...]) -> Path:
    """The 20 real CCNet documents under GPT-2's tokenizer (vocabulary 50,257: uint16 ids), 3 shards."""
    from curate.train.sample import write_sample_shards

    out = tmp_path_factory.mktemp("shards")
    return write_sample_shards(list(jsonl_files), out, n_shards=3, row_group_bytes=4096)


@pytest.fixture(scope="module")
def documents(shards: Path) -> list[np.ndarray]:
    """Every document's tokens, read straight from the Parquet shards in manifest order."""
    manifest = json.loads((shards / "manifest.json").read_text())
    return [
        np.asarray(row, dtype=np.int64)
        for entry in manifest["shards"]
        for row in pq.read_table(shards / entry["path"], columns=["tokens"]).column("tokens").to_pylist()
    ]


def _mds_python() -> Path:
    python = MDS_ENV / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{MDS_ENV} is missing: `make test` builds it (make mds-env)")
        pytest.skip(f"{MDS_ENV} is missing: run `make mds-env`")
    return python


def _stream_hash(docs: list[np.ndarray]) -> str:
    digest = export.StreamHash()
    for doc in docs:
        digest.add(doc)
    return digest.hexdigest()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks, windows and row groups a few thousand tokens long, so the 20 documents cross many of them
    (documents split across LitData chunks and datatrove windows, several MDS shards and Parquet files)."""
    monkeypatch.setattr(export, "BLOCK_QUANTUM", 512)
    monkeypatch.setattr(export, "WINDOW_TOKENS", 1000)
    monkeypatch.setattr(export, "ROW_GROUP_TOKENS", 2000)
    return 3 * 512 * 2 * 2  # chunk_bytes: 3 quanta of 4-byte ids, 6 of 2-byte ones


@pytest.mark.parametrize("fmt", ["megatron", "litdata", "hf", "datatrove"])
def test_the_consumer_reads_every_document_back(
    fmt: str, shards: Path, documents, small_chunks: int, tmp_path: Path
):
    dest = tmp_path / fmt
    export.export(str(shards), fmt, str(dest), chunk_bytes=small_chunks)
    metadata = json.loads((dest / export.METADATA).read_text())
    read = [np.asarray(doc, dtype=np.int64) for doc in export.READERS[fmt](dest, metadata)]
    assert len(read) == len(documents) == metadata["documents"] == 20
    assert all(np.array_equal(a, b) for a, b in zip(read, documents, strict=True))
    assert (
        sum(map(len, read))
        == metadata["tokens"]
        == json.loads((shards / "manifest.json").read_text())["total_tokens"]
    )
    assert metadata["token_stream_hash"] == _stream_hash(documents)
    assert metadata["tokenizer"]["token_dtype"] == "uint16" and metadata["tokenizer"]["eos_id"] == 50256
    assert (dest / "tokenizer.json").read_bytes() == (shards / "tokenizer.json").read_bytes()
    assert main(["export", "--verify", str(dest)]) == 0


def test_litdata_chunks_are_whole_blocks_but_a_short_last_one(
    shards: Path, documents, small_chunks: int, tmp_path: Path
):
    """TokensLoader drops a chunk's tail shorter than a block: every chunk but the last holds a multiple of
    the quantum (3072 tokens while the stream lasts), the rest (< 512 tokens) is a chunk of its own."""
    from litdata import StreamingDataset
    from litdata.streaming.item_loader import TokensLoader

    export.export(str(shards), "litdata", str(tmp_path / "l"), chunk_bytes=small_chunks)
    chunks = json.loads((tmp_path / "l" / "index.json").read_text())["chunks"]
    dims = [chunk["dim"] for chunk in chunks]
    total = sum(map(len, documents))
    assert sum(dims) == total and all(dim == 3072 for dim in dims[:-2])
    assert dims[-2] % 512 == 0 and dims[-1] == total % 512 > 0
    assert sum(chunk["chunk_size"] for chunk in chunks) > len(documents)  # documents split across chunks
    blocks = StreamingDataset(str(tmp_path / "l"), item_loader=TokensLoader(block_size=512), shuffle=False)
    stream = np.concatenate([block.numpy() for block in blocks])
    assert np.array_equal(stream, np.concatenate(documents)[: total - dims[-1]])


def test_megatron_index_is_the_published_layout(shards: Path, documents, tmp_path: Path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    export.export(str(shards), "megatron", str(tmp_path / "m"))
    header = (tmp_path / "m" / "data.idx").read_bytes()[:18]
    assert header[:9] == b"MMIDIDX\x00\x00" and header[17] == 8  # version 1, DType.uint16
    dataset = IndexedDataset(str(tmp_path / "m" / "data"))
    assert len(dataset) == len(documents) and list(dataset.document_indices) == list(range(21))
    assert np.array_equal(dataset[7], documents[7]) and dataset[7].dtype == np.uint16


def test_large_vocabularies_take_int32_as_megatron_does():
    from megatron.core.datasets.indexed_dataset import DType

    for vocab in (512, 50_257, 65_499, 65_500, 128_256):
        assert export.token_dtype(vocab) == np.dtype(DType.optimal_dtype(vocab))


def test_a_tampered_export_fails_verification(shards: Path, tmp_path: Path):
    dest = tmp_path / "d"
    export.export(str(shards), "datatrove", str(dest))
    tokens = bytearray((dest / "data.ds").read_bytes())
    tokens[100] ^= 1
    (dest / "data.ds").write_bytes(bytes(tokens))
    assert main(["export", "--verify", str(dest)]) == 1


def test_by_domain_keeps_the_mix_as_megatron_blend_weights(shards: Path, tmp_path: Path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    dest = tmp_path / "mixed"
    metadata = export.export(str(shards), "megatron", str(dest), by_domain=True)
    manifest = json.loads((shards / "manifest.json").read_text())
    weights = metadata["blend"]["weights"]
    assert len(weights) == len(manifest["domains"]) > 1
    assert sum(weights.values()) == pytest.approx(1, abs=1e-5)
    words = metadata["blend"]["data_path"].split()
    for weight, prefix in zip(words[::2], words[1::2], strict=True):
        dataset = IndexedDataset(str(dest / prefix))
        tokens = int(dataset.sequence_lengths.sum())
        assert float(weight) == pytest.approx(tokens / manifest["total_tokens"], abs=1e-5)
    assert export.verify(str(dest))["ok"]


def test_mds_reads_back_with_mosaicml_streaming(shards: Path, documents, tmp_path: Path):
    """mosaicml-streaming pins numpy<2.2: its StreamingDataset runs in the side environment."""
    python = _mds_python()
    dest = tmp_path / "mds"
    export.export(str(shards), "mds", str(dest), chunk_bytes=8192)
    assert len(json.loads((dest / "index.json").read_text())["shards"]) > 1
    probe = (
        "import sys, json, numpy as np; from streaming import StreamingDataset; "
        "d = StreamingDataset(local=sys.argv[1], shuffle=False, batch_size=1); "
        "print(json.dumps([np.asarray(d[i]['tokens']).tolist() for i in range(d.num_samples)]))"
    )
    result = subprocess.run(
        [str(python), "-c", probe, str(dest)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    read = [np.asarray(doc) for doc in json.loads(result.stdout)]
    assert len(read) == len(documents) and all(
        np.array_equal(a, b) for a, b in zip(read, documents, strict=True)
    )


def test_import_reads_what_megatron_core_itself_wrote(shards: Path, documents, tmp_path: Path):
    """The reverse direction: a corpus written by megatron-core's own builder, documents without EOS."""
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    prefix = tmp_path / "corpus"
    builder = IndexedDatasetBuilder(str(prefix) + ".bin", dtype=np.uint16)
    for doc in documents:
        builder.add_document(torch_tensor(doc[:-1]), [len(doc) - 1])  # Megatron without --append-eod
    builder.finalize(str(prefix) + ".idx")
    out = tmp_path / "imported"
    args = ["shards", "import", str(prefix), "--format", "megatron", "--output", str(out)]
    assert main([*args, "--tokenizer", str(shards / "tokenizer.json"), "--domain", "books"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["total_docs"] == 20 and manifest["domains"] == {"books": sum(map(len, documents))}
    assert export.source_hash(export.ShardSet.open(str(out))).hexdigest() == _stream_hash(documents)
    assert main(["shards", "verify", str(out), "--no-decode"]) == 0


def test_import_of_a_datasets_save_to_disk_folder(shards: Path, documents, tmp_path: Path):
    import datasets

    folder = tmp_path / "hfds"
    datasets.Dataset.from_dict({"input_ids": [doc.tolist() for doc in documents]}).save_to_disk(str(folder))
    out = tmp_path / "imported"
    args = ["shards", "import", str(folder), "--format", "hf", "--output", str(out)]
    assert main([*args, "--tokenizer", str(shards / "tokenizer.json")]) == 0
    assert export.source_hash(export.ShardSet.open(str(out))).hexdigest() == _stream_hash(documents)


def test_an_export_imports_back_to_the_same_hash(shards: Path, tmp_path: Path, capsys):
    export.export(str(shards), "hf", str(tmp_path / "hf"))
    capsys.readouterr()
    assert (
        main(["shards", "import", str(tmp_path / "hf"), "--format", "hf", "--output", str(tmp_path / "back")])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["export_hash_matches"] and result["eos_appended"] == 0


def torch_tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(array.astype(np.int64))


def _upload(folder: Path, endpoint: str, prefix: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), "datasets", f"{prefix}/{path.relative_to(folder).as_posix()}")


def test_export_from_and_to_s3_verified_there(shards: Path, documents, s3_server: str, capsys):
    """Shards on an S3 API server (moto) exported to a prefix there (metadata last) and --verify read from
    it; a changed object there fails it."""
    import boto3

    _upload(shards, s3_server, "export-src")
    endpoint = ["--s3-endpoint-url", s3_server]
    args = [
        "export",
        "s3://datasets/export-src",
        "--format",
        "megatron",
        "--output",
        "s3://datasets/export-m",
    ]
    assert main([*args, *endpoint, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", "--verify", "s3://datasets/export-m", *endpoint]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["copied_from"] == "s3://datasets/export-m" and result["documents"] == 20
    assert result["token_stream_hash"] == _stream_hash(documents) == result["expected"]
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    tokens = bytearray(client.get_object(Bucket="datasets", Key="export-m/data.bin")["Body"].read())
    tokens[10] ^= 1
    client.put_object(Bucket="datasets", Key="export-m/data.bin", Body=bytes(tokens))
    assert main(["export", "--verify", "s3://datasets/export-m", *endpoint]) == 1


def test_export_to_gcs_verified_through_beam_and_through_pyarrow(
    shards: Path, documents, gcs_server, monkeypatch: pytest.MonkeyPatch, capsys
):
    """On a GCS emulator: a --by-domain LitData export written and verified through Beam's GCS filesystem;
    then, as where Beam is not installed (`curate[train]`, the MDS side environment), an HF export
    written and verified through pyarrow's GcsFileSystem."""
    dest = "gs://datasets-gcs/export-litdata"
    assert (
        main(["export", str(shards), "--format", "litdata", "--by-domain", "--output", dest, "--quiet"]) == 0
    )
    capsys.readouterr()
    assert main(["export", "--verify", dest]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["documents"] == 20 and len(result["datasets"]) > 1
    monkeypatch.setattr(files, "_beam_filesystems", lambda: None)
    export.export(str(shards), "hf", "gs://datasets-gcs/export-hf")
    assert {blob.name for blob in gcs_server.list_blobs("datasets-gcs", prefix="export-hf/")} == {
        "export-hf/curate-export.json",
        "export-hf/tokenizer.json",
        "export-hf/data/train-00000.parquet",
    }
    result = export.verify("gs://datasets-gcs/export-hf")
    assert result["ok"] and result["token_stream_hash"] == _stream_hash(documents)

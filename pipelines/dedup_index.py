"""The dedup index a run writes beside its output, and reading other versions' indexes back into Beam.

A run keeps, as Parquet under ``OUT/index/``, what its dedup stages saw, so that committing the output
keeps it as part of the version: the exact-dedup key of every document that survived exact dedup, and
the MinHash signature of every document that survived near-dedup *and of every near-duplicate it
removed* (with ``dup_of``, the document it duplicates). Indexing the removed ones keeps clusters
transitive across versions and segments: a later A ~ B ~ C chain, with B removed as a copy of A, still
catches C when C resembles B but not A, exactly as one run over all of them would.

    index/index.json                 what the keys were computed with (normalisation, num_perm, seed, ...)
    index/exact/<prefix>-*.parquet   hash (normalised-text xxh3-128, hex), id
    index/minhash/<prefix>-*.parquet id, signature (num_perm x uint32, little-endian bytes),
                                     dup_of (null for a survivor; for a removed near-duplicate, the id
                                     of the document it duplicates; absent in indexes of older versions)

Band keys are not stored: they follow from the signature and the reading recipe's bands x rows, so one
index serves any LSH banding with the same num_perm and seed. Later runs name versions in
``stages.dedup_exact.against`` / ``stages.dedup_minhash.against``; their index files are read by Beam
workers and joined by key (GroupByKey on the hash or the band key), never loaded whole on one worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa

from curate.core.errors import CurateError

INDEX_DIR = "index"
INDEX_META = "index.json"
EXACT_SCHEMA = pa.schema([("hash", pa.string()), ("id", pa.string())])
MINHASH_SCHEMA = pa.schema([("id", pa.string()), ("signature", pa.binary()), ("dup_of", pa.string())])

# Ids of documents from other versions inside this run's groupings: the tag sorts before every real id
# (so a cluster holding an old document has it as its root) and names which `against` entry it came from.
OLD_TAG = "\x00"


def old_node(version: int, doc_id: str, dup_of: str | None = None) -> str:
    """A node for an old version's document; one that version removed carries what it duplicates."""
    node = f"{OLD_TAG}{version}{OLD_TAG}{doc_id}"
    return f"{node}{OLD_TAG}{dup_of}" if dup_of else node


def parse_old_node(node: str) -> tuple[int, str] | None:
    """``(version index, id of the document that version kept)`` of a tagged old-version node (for a
    near-duplicate that version removed: the id it duplicates); None for this run's ids."""
    if not node.startswith(OLD_TAG):
        return None
    _, version, doc_id, *dup_of = node.split(OLD_TAG, 3)
    return int(version), dup_of[0] if dup_of else doc_id


# ------------------------------------------------------------------------------------ version resolver

# NAME@REF -> local folder of that version. The application installs the version store's resolver
# (curate.versions.resolve_data); the pipelines layer only knows folders.
_resolver: Callable[[str], str] | None = None


def set_version_resolver(resolver: Callable[[str], Any] | None) -> None:
    global _resolver
    _resolver = resolver


# How an `against` entry is named in `dup_version` when that is not the entry itself: a segmented run
# deduplicates against its staging folder, but names the output folder the user gave.
_labels: dict[str, str] = {}


def set_version_label(spec: str, label: str) -> None:
    _labels[spec] = label


def version_label(spec: str) -> str:
    return _labels.get(spec, spec)


def version_folder(spec: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    if FileSystems.exists(f"{spec.rstrip('/')}/{INDEX_DIR}/{INDEX_META}") or _resolver is None:
        return spec.rstrip("/")
    return str(_resolver(spec)).rstrip("/")


def index_files(spec: str, kind: str, expected: dict[str, Any]) -> list[str]:
    """The index files of ``kind`` ('exact' or 'minhash') of a version, after checking that they were
    computed with the same parameters as this run's (else the keys could never match)."""
    from apache_beam.io.filesystems import FileSystems

    folder = version_folder(spec)
    meta_path = f"{folder}/{INDEX_DIR}/{INDEX_META}"
    if not FileSystems.exists(meta_path):
        raise CurateError(
            f"{spec}: has no dedup index ({meta_path} missing); only versions written by a curate run "
            "with dedup enabled can be deduplicated against"
        )
    with FileSystems.open(meta_path) as handle:
        meta = json.loads(handle.read().decode("utf-8"))
    recorded = meta.get(kind)
    if recorded is None:
        raise CurateError(f"{spec}: its index has no '{kind}' keys (that stage was off in its run)")
    differing = sorted(key for key in expected if recorded.get(key) != expected[key])
    if differing:
        raise CurateError(
            f"{spec}: its {kind} index was computed with other settings ({', '.join(differing)}: "
            f"{[recorded.get(k) for k in differing]} vs this recipe's {[expected[k] for k in differing]}); "
            "use the same settings to deduplicate against it"
        )
    matches = FileSystems.match([f"{folder}/{INDEX_DIR}/{kind}/*.parquet"])[0].metadata_list
    return sorted(m.path for m in matches)


def read_index(
    pipeline: beam.Pipeline, files: list[str], columns: list[str] | None, label: str
) -> beam.PCollection:
    """Rows of index files as dicts, read by the workers (files are spread, not loaded by the driver);
    ``columns`` None: every column the files have (older indexes lack ``dup_of``)."""
    if not files:
        return pipeline | f"{label}None" >> beam.Create([])
    return (
        pipeline
        | f"{label}Files" >> beam.Create(files)
        | f"{label}Spread" >> beam.Reshuffle()
        | f"{label}Read" >> beam.io.ReadAllFromParquet(columns=columns)
    )


# ----------------------------------------------------------------------------------------- writing


class _RowsToTable(beam.DoFn):
    def __init__(self, schema: pa.Schema):
        self._schema = schema

    def process(self, batch: list[dict[str, Any]]) -> Iterator[pa.Table]:
        yield pa.Table.from_pylist(batch, schema=self._schema)


def write_index(rows: beam.PCollection, path_prefix: str, schema: pa.Schema, label: str) -> None:
    (
        rows
        | f"{label}Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=16384)
        | f"{label}ToArrow" >> beam.ParDo(_RowsToTable(schema))
        | f"{label}Write"
        >> beam.io.WriteToParquetBatched(
            path_prefix, schema=schema, codec="zstd", file_name_suffix=".parquet"
        )
    )


def merge_meta(existing: dict[str, Any] | None, new: dict[str, Any], where: str) -> dict[str, Any]:
    """index.json of a folder that already has an index (append, segments): the settings must agree."""
    if not existing:
        return new
    for kind, settings in new.items():
        if kind in existing and existing[kind] != settings:
            raise CurateError(
                f"{where}: the existing dedup index ({kind}) was computed with other settings; "
                "append with the same dedup settings as the base version"
            )
    return {**existing, **new}

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import pyarrow as pa

from curate.core.config import is_version_ref
from curate.core.errors import CurateError
from curate.core.files import check_confined

INDEX_DIR = "index"
INDEX_META = "index.json"
EXACT_SCHEMA = pa.schema([("hash", pa.string()), ("id", pa.string())])
MINHASH_SCHEMA = pa.schema([("id", pa.string()), ("signature", pa.binary()), ("dup_of", pa.string())])

REASON_VERSION = "duplicate_of_version"  # this run's document repeats one of an `against` version


def text_of(doc: dict[str, Any]) -> str:
    return doc.get("text") or ""


def key_by_id(docs: beam.PCollection, label: str = "KeyById") -> beam.PCollection:
    """Documents as ``(id, document)``: how a dedup stage's decisions meet their documents."""
    return docs | label >> beam.Map(lambda doc: (doc["id"], doc))


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


# ------------------------------------------------------------------------------------ versions


@dataclass(frozen=True)
class Versions:
    """Where the versions a run deduplicates against live, as the driver knows it (the pipelines layer
    only knows folders): ``resolve`` maps NAME@REF to a local folder (the application's version store);
    ``folders`` places an entry elsewhere (a segmented run's own output, still in its staging folder)."""

    resolve: Callable[[str], Any] | None = None
    folders: Mapping[str, str] = field(default_factory=dict)

    def folder(self, spec: str) -> str:
        from apache_beam.io.filesystems import FileSystems

        if spec in self.folders:
            return self.folders[spec].rstrip("/")
        if FileSystems.exists(f"{spec.rstrip('/')}/{INDEX_DIR}/{INDEX_META}") or self.resolve is None:
            return spec.rstrip("/")
        return str(self.resolve(spec)).rstrip("/")


def index_files(spec: str, kind: str, expected: dict[str, Any], versions: Versions) -> list[str]:
    """The index files of ``kind`` ('exact' or 'minhash') of a version, after checking that they were
    computed with the same parameters as this run's (else the keys could never match)."""
    from apache_beam.io.filesystems import FileSystems

    folder = versions.folder(spec)
    meta_path = f"{folder}/{INDEX_DIR}/{INDEX_META}"
    if not FileSystems.exists(meta_path):
        raise CurateError(
            f"{spec}: has no dedup index ({meta_path} missing); only versions written by a curate run "
            "with dedup enabled can be deduplicated against"
        )
    if not is_version_ref(spec):  # a folder; a version comes from the store, which the service trusts
        check_confined(meta_path)  # in a job of `curate serve`: the folder is still inside its roots
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

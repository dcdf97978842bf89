"""What every reader yields: a document, or a rejection that says what could not be read and where.

A record that cannot be read is yielded as a rejection (stage ``read``, reason ``unreadable``, the file
and byte offset, line or row in ``read_error``), never raised: one bad record must not cost a run its other
records, and the count of what was lost must appear in the stats.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from curate.core.config import NamesPath, Strict
from curate.core.ids import document_id
from curate.pipelines.unique_ids import POSITION


class InputConfig(Strict):
    paths: Annotated[list[str], NamesPath("glob")] = Field(
        default_factory=list, description="Files or globs; anything Beam can open."
    )
    format: Literal["auto", "warc", "wet", "jsonl", "parquet"] = "auto"
    id_field: str = "id"
    url_field: str = "url"
    text_field: str = "text"
    max_document_bytes: int = Field(
        8_000_000,
        ge=1,
        le=2_000_000_000,  # one record is held in memory whole: past 2 GB, a worker runs out
        description="Records larger than this are rejected as too_large as they are read (before any stage).",
    )
    on_duplicate_id: Literal["derive", "fail"] = Field(
        "derive",
        description="Two records with one id: derive a stable id from file and position for the later "
        "one (the original goes to metadata.original_id), or fail the run.",
    )
    strict: bool = Field(
        False, description="Fail the run at the first unreadable record instead of rejecting it."
    )


Document = dict[str, Any]
READ_STAGE = "read"


def unreadable(path: str, where: str, message: str, url: str | None = None) -> Document:
    """A rejection for a record that could not be read; its id is stable so reruns agree."""
    message = "".join(char if char.isprintable() else "?" for char in message)  # one clean line
    return {
        "id": document_id(None, f"{path}@{where}", ""),
        "url": url,
        "text": "",
        "source": path,
        "metadata": {},
        "read_error": f"{path}: {where}: {message}",
        "stage": READ_STAGE,
        "reason": "unreadable",
    }


def too_large(path: str, where: str, size: int, cfg: InputConfig) -> Document:
    """A rejection for a record over ``input.max_document_bytes``; its text is not kept."""
    doc = unreadable(
        path, where, f"{size:,} bytes exceed input.max_document_bytes ({cfg.max_document_bytes:,})"
    )
    doc["reason"] = "too_large"
    return doc


def describe(error: BaseException) -> str:
    """An exception as one short line: its type when its message is empty (RecursionError and kin)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def row_to_document(row: dict[str, Any], path: str, where: str, cfg: InputConfig) -> Document:
    """Map a JSONL/Parquet row to a document; other fields travel along as metadata."""
    text = row.pop(cfg.text_field, None)
    if not isinstance(text, str):
        raise ValueError(f"field '{cfg.text_field}' is missing or not a string")
    url = row.pop(cfg.url_field, None)
    given_id = row.pop(cfg.id_field, None)
    doc_id = str(given_id) if given_id not in (None, "") else document_id(url, None, text)
    return {
        "id": doc_id,
        "url": url if isinstance(url, str) else None,
        "text": text,
        "source": path,
        "metadata": row,
        POSITION: where,
    }

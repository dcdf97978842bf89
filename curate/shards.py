"""Token shards around the format: the manifest, and reading, verifying and inspecting a run's shards.

Contract (`curate.shards/1`, relied on by `curate.train`): OUT/manifest.json lists every shard with its
sha256 and token counts; see curate.core.shard_format for the shard itself.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.parquet as pq

import curate
from curate.core.errors import CurateError
from curate.core.files import exists, join, list_files, open_binary, read_bytes, write_atomic
from curate.core.shard_format import (
    FORMAT,
    MANIFEST,
    TOKENIZER_FILE,
    shard_schema,
    table_from_bytes,
)
from curate.core.tokenizer import eos_id_of, token_dtype

# ------------------------------------------------------------------------------------------ manifest


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(curate.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def write_manifest(
    out_dir: str, shard_infos: Iterable[Mapping[str, Any]], config: Any, stats: Mapping[str, Any]
) -> dict[str, Any]:
    """Assemble and atomically write OUT/manifest.json after the pipeline; returns the manifest."""
    tokenizer_bytes = read_bytes(join(out_dir, TOKENIZER_FILE))
    tokenizer = json.loads(tokenizer_bytes)
    shards = sorted((dict(s) for s in shard_infos), key=lambda s: s["path"])
    dtypes = {s.get("token_dtype") for s in shards} - {None}
    meta = next((s for s in shards if "eos_id" in s), {})

    vocab_size = meta.get("vocab_size")
    if vocab_size is None:
        from tokenizers import Tokenizer

        loaded = Tokenizer.from_str(tokenizer_bytes.decode("utf-8"))
        vocab_size = loaded.get_vocab_size(with_added_tokens=True)
        eos_id = eos_id_of(loaded, TOKENIZER_FILE)
    else:
        eos_id = meta["eos_id"]
    domains: dict[str, int] = {}
    for shard in shards:
        for domain, n in shard.get("domains", {}).items():
            domains[domain] = domains.get(domain, 0) + n
    manifest = {
        "format": FORMAT,
        "token_dtype": dtypes.pop() if len(dtypes) == 1 else token_dtype(vocab_size),
        "tokenizer": {
            "path": TOKENIZER_FILE,
            "vocab_size": vocab_size,
            "eos_id": eos_id,
            "sha256": hashlib.sha256(tokenizer_bytes).hexdigest(),
            "model": tokenizer.get("model", {}).get("type"),
            "source": meta.get("tokenizer_source"),
        },
        "shards": [
            {
                key: shard[key]
                for key in ("path", "n_docs", "n_tokens", "sha256", "bytes", "row_groups", "domains")
                if key in shard
            }
            for shard in shards
        ],
        "total_tokens": sum(s["n_tokens"] for s in shards),
        "total_docs": sum(s["n_docs"] for s in shards),
        "domains": dict(sorted(domains.items())),
        "code": {"curate": curate.__version__, "git_commit": git_commit()},
        "config": config.model_dump(mode="json") if hasattr(config, "model_dump") else config,
        "stats": {k: stats[k] for k in ("documents_read", "documents_kept", "mixing") if k in stats},
    }
    payload = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    write_atomic(join(out_dir, MANIFEST), payload)
    return manifest


# ------------------------------------------------------------------------------------------- reading


class Folder(Protocol):
    """A folder that is not on the local disk (a version read in place: curate.versions.RemotePath)."""

    def __truediv__(self, part: str) -> Any: ...


def read_manifest(out_dir: str | Path | Folder) -> dict[str, Any]:
    """OUT/manifest.json of a local folder, one on an object store (gs://, s3://), or a folder inside a
    version (curate.versions.RemotePath: same `/` and read_text)."""
    if isinstance(out_dir, str | Path):
        path: Any = join(str(out_dir), MANIFEST)
        if not exists(path):
            raise CurateError(f"{path}: no such file; pass the output folder of `curate run`")
        read = lambda: read_bytes(path)  # noqa: E731
    else:
        path = out_dir / MANIFEST
        read = path.read_text
    try:
        manifest = json.loads(read())
    except OSError as error:
        raise CurateError(f"{path}: cannot read ({error}); pass the output folder of `curate run`") from None
    except ValueError as error:
        raise CurateError(f"{path}: not valid JSON ({error}); re-run `curate run`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CurateError(f"{path}: format {found!r}, expected {FORMAT!r}")
    _check_manifest_keys(manifest, path)
    return manifest


# Keys every reader of a manifest relies on: (key, subkeys).
_REQUIRED = (("tokenizer", ("path", "sha256", "eos_id", "vocab_size")), ("shards", ()), ("token_dtype", ()))


def _check_manifest_keys(manifest: dict[str, Any], path: Path) -> None:
    """A manifest that lost a key fails here, in one line, not as a KeyError deep in a reader."""
    for key, subkeys in _REQUIRED:
        value = manifest.get(key)
        if value is None or (subkeys and not isinstance(value, dict)):
            raise CurateError(f"{path}: missing or malformed key '{key}'; re-run `curate run` to rewrite it")
        missing = [sub for sub in subkeys if sub not in value]
        if missing:
            raise CurateError(f"{path}: key '{key}' lacks {', '.join(missing)}; re-run `curate run`")
    if not isinstance(manifest["shards"], list) or not all(
        isinstance(shard, dict) and "path" in shard for shard in manifest["shards"]
    ):
        raise CurateError(f"{path}: key 'shards' must list shards with a 'path'; re-run `curate run`")


def iter_documents(path: str | Path, columns: Sequence[str] = ("id", "tokens")) -> Iterator[dict[str, Any]]:
    """Rows of one shard, one row group at a time (memory bounded by the row-group size)."""
    parquet = pq.ParquetFile(open_binary(str(path)))
    for group in range(parquet.num_row_groups):
        yield from parquet.read_row_group(group, columns=list(columns)).to_pylist()


def iter_token_arrays(path: str | Path) -> Iterator[np.ndarray]:
    """Each row group's tokens as one flat numpy array (documents concatenated, EOS-separated)."""
    parquet = pq.ParquetFile(open_binary(str(path)))
    for group in range(parquet.num_row_groups):
        tokens = parquet.read_row_group(group, columns=["tokens"]).column("tokens").combine_chunks()
        yield tokens.flatten().to_numpy(zero_copy_only=False)


# ---------------------------------------------------------------------------------- verify / inspect


def verify(out_dir: str | Path, decode: bool = True) -> list[str]:
    """Every problem found in a run's shards, one line each (empty: all good).

    Checks each shard's sha256 and size against the manifest, its schema, row and token counts, that
    each document ends with EOS, and (``decode``) that decoding gives the text in OUT/documents.
    """
    from tokenizers import Tokenizer

    root = str(out_dir)
    manifest = read_manifest(root)
    problems: list[str] = []
    tok_path = join(root, manifest["tokenizer"]["path"])
    tok_bytes = read_bytes(tok_path) if exists(tok_path) else b""
    if hashlib.sha256(tok_bytes).hexdigest() != manifest["tokenizer"]["sha256"]:
        problems.append(f"{tok_path}: sha256 differs from the manifest (or file missing)")
    eos = manifest["tokenizer"]["eos_id"]
    schema = shard_schema(manifest["token_dtype"])
    texts = _document_texts(root) if decode else {}
    tokenizer = Tokenizer.from_str(tok_bytes.decode("utf-8")) if texts and tok_bytes else None
    totals: dict[str, int] = {}
    seen: dict[str, int] = {}  # id -> copies found in the shards
    checker = _ShardChecker(schema, eos, texts, tokenizer, totals, seen)
    for shard in manifest["shards"]:
        problems += checker.check(join(root, shard["path"]), shard)
    problems += _unlisted_shards(root, manifest)
    if sum(s["n_tokens"] for s in manifest["shards"]) != manifest["total_tokens"]:
        problems.append(f"{join(root, MANIFEST)}: total_tokens is not the sum over shards")
    if tokenizer is not None and not problems:
        wrong = [i for i, (_, n) in texts.items() if seen.get(i, 0) != n]
        if wrong:
            problems.append(
                f"{join(root, 'documents')}: {len(wrong)} document(s) appear in the shards a different "
                f"number of times than their epochs, e.g. {wrong[0]}"
            )
    if "domains" in manifest and not problems and totals != manifest["domains"]:
        problems.append(f"{join(root, MANIFEST)}: per-domain token totals differ from the shards")
    return problems


def _unlisted_shards(root: str, manifest: dict[str, Any]) -> list[str]:
    """Files next to the listed shards that the manifest does not list (another run's shards mixed in,
    say): a folder of shards holds exactly the manifest's."""
    listed: dict[str, set[str]] = {"shards": set()}
    for shard in manifest["shards"]:
        folder, _, name = shard["path"].rpartition("/")
        if folder:  # (a shard beside manifest.json would share its folder with the run's other files)
            listed.setdefault(folder, set()).add(name)
    extra = [
        join(root, folder, name)
        for folder, names in sorted(listed.items())
        for name in sorted({p.rsplit("/", 1)[-1] for p in list_files(join(root, folder, "*"))} - names)
    ]
    if not extra:
        return []
    return [
        f"{extra[0]}: not listed in {MANIFEST} ({len(extra)} such file(s)); a run's shards are the manifest's"
    ]


class _ShardChecker:
    """One shard's checks for `verify`; adds its tokens per domain and document copies to the totals."""

    def __init__(self, schema, eos: int, texts: dict, tokenizer, totals: dict, seen: dict):
        self.schema, self.eos, self.texts, self.tokenizer = schema, eos, texts, tokenizer
        self.totals, self.seen = totals, seen

    def check(self, path: str, shard: dict[str, Any]) -> list[str]:
        if not exists(path):
            return [f"{path}: missing"]
        data = read_bytes(path)
        if hashlib.sha256(data).hexdigest() != shard["sha256"]:
            return [f"{path}: sha256 differs from the manifest (the file was changed or damaged)"]
        table = table_from_bytes(data)
        if not table.schema.equals(self.schema, check_metadata=False):
            return [f"{path}: schema {table.schema} is not {self.schema}"]
        problems: list[str] = []
        n_tokens = 0
        for row in table.to_pylist():
            n_tokens += len(row["tokens"])
            problems += self._check_row(path, row)
        if table.num_rows != shard["n_docs"] or n_tokens != shard["n_tokens"]:
            problems.append(f"{path}: {table.num_rows} docs / {n_tokens} tokens, manifest says otherwise")
        return problems

    def _check_row(self, path: str, row: dict[str, Any]) -> list[str]:
        tokens = row["tokens"]
        self.totals[row["domain"]] = self.totals.get(row["domain"], 0) + len(tokens)
        if not tokens or tokens[-1] != self.eos or row["n_tokens"] != len(tokens):
            return [f"{path}: document {row['id']}: does not end with EOS or n_tokens is wrong"]
        if self.tokenizer is None:
            return []
        self.seen[row["id"]] = self.seen.get(row["id"], 0) + 1
        expected = self.texts.get(row["id"])
        if expected is None:
            return [f"{path}: document {row['id']} is not in documents/"]
        if self.tokenizer.decode(tokens[:-1], skip_special_tokens=False) != expected[0]:
            return [f"{path}: document {row['id']} does not decode to its text"]
        return []


class _FileIn:
    """One file of a run's folder, on any filesystem Beam knows or inside a version read in place."""

    def __init__(self, root: str | Path | Folder, relative: str):
        self.local = isinstance(root, str | Path)
        self.target: Any = root / relative if not isinstance(root, str | Path) else join(str(root), relative)

    def exists(self) -> bool:
        return exists(self.target) if self.local else self.target.is_file()

    def read_bytes(self) -> bytes:
        return read_bytes(self.target) if self.local else self.target.read_bytes()

    def open(self) -> Any:
        return open_binary(self.target) if self.local else self.target.open()


def _iter_rows(file: _FileIn, columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    """Rows of one shard, one row group at a time (a version's shard is read by range: footer, groups)."""
    with file.open() as handle:
        parquet = pq.ParquetFile(handle)
        for group in range(parquet.num_row_groups):
            yield from parquet.read_row_group(group, columns=list(columns)).to_pylist()


def has_documents(out_dir: str | Path) -> bool:
    """Whether the run wrote OUT/documents (what the decode round-trip compares against)."""
    return bool(list_files(join(str(out_dir), "documents", "*.parquet")))


def _document_texts(root: str) -> dict[str, tuple[str, int]]:
    """id -> (text, copies expected in the shards) from OUT/documents, when the run wrote it."""
    texts: dict[str, tuple[str, int]] = {}
    for path in list_files(join(root, "documents", "*.parquet")):
        table = table_from_bytes(read_bytes(path))
        ids, text = table.column("id").to_pylist(), table.column("text").to_pylist()
        epochs = table.column("epochs").to_pylist() if "epochs" in table.column_names else [1] * len(ids)
        texts.update((i, (t, e or 1)) for i, t, e in zip(ids, text, epochs, strict=True))
    return texts


def inspect(out_dir: str | Path | Folder, samples: int = 3, sample_chars: int = 300) -> dict[str, Any]:
    """Counts, per-domain shares and a few decoded documents from the first shard(s).

    ``out_dir`` may be a folder inside a version read in place (curate.versions.RemotePath): then only the
    manifest, the tokenizer and the shards that the samples come from are read (Parquet footers and row
    groups by range), not every shard."""
    from tokenizers import Tokenizer

    manifest = read_manifest(out_dir)
    total = manifest["total_tokens"]
    domains = manifest.get("domains", {})
    decoded: list[dict[str, Any]] = []
    tokenizer_file = _FileIn(out_dir, manifest["tokenizer"]["path"])
    if samples and manifest["shards"] and tokenizer_file.exists():
        tokenizer = Tokenizer.from_str(tokenizer_file.read_bytes().decode("utf-8"))
        for shard in manifest["shards"]:
            shard_file = _FileIn(out_dir, shard["path"])
            for row in _iter_rows(shard_file, ("id", "tokens", "domain")):
                text = tokenizer.decode(row["tokens"][:-1], skip_special_tokens=False)
                decoded.append({"id": row["id"], "domain": row["domain"], "text": text[:sample_chars]})
                if len(decoded) >= samples:
                    break
            if len(decoded) >= samples:
                break
    return {
        "shards": len(manifest["shards"]),
        "documents": sum(s["n_docs"] for s in manifest["shards"]),
        "total_tokens": total,
        "token_dtype": manifest["token_dtype"],
        "tokenizer": manifest["tokenizer"],
        "domains": {d: {"tokens": n, "share": n / total if total else 0.0} for d, n in domains.items()},
        "samples": decoded,
    }

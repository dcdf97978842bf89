"""Output files that appear whole or not at all, on any filesystem Beam knows."""

from __future__ import annotations


def write_atomic(path: str, payload: bytes) -> None:
    """Write through Beam's FileSystems (local, gs://, s3://) under a temporary name, then rename."""
    import uuid

    from apache_beam.io.filesystems import FileSystems

    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(temporary, compression_type="uncompressed") as handle:
        handle.write(payload)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])

"""Object stores (s3://, gs://) for the driver: Beam's own filesystems, set up before any path is touched.

Beam's S3 filesystem needs its options before the first ``FileSystems.match`` on the driver (the workers
get them from the pipeline options), so every command that reads or writes a run's folder calls
`configure` first. Credentials are never passed here: boto3 reads AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY (or a profile or role) and AWS_ENDPOINT_URL_S3 from the environment itself, and
Google's client reads Application Default Credentials, so no secret reaches a recipe, the pipeline
options that a runner's UI shows, manifest.json or the console.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from curate.core.files import is_local, set_remote_options, share_s3_clients

if TYPE_CHECKING:  # the CLI registers its flags without importing Beam (`curate --help` stays fast)
    from curate.pipelines.runner import StorageConfig

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


def configure(storage: StorageConfig | None = None, extra_args: list[str] | None = None) -> None:
    """Point Beam's filesystems (this process) at the recipe's object stores."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    from curate.pipelines.runner import StorageConfig

    storage = storage or StorageConfig()
    set_remote_options(storage.s3_endpoint_url, storage.s3_region)
    args = storage.beam_args() + list(extra_args or [])
    FileSystems.set_options(PipelineOptions(args))
    share_s3_clients()
    if os.environ.get(EMULATOR_ENV):
        _anonymous_gcs()


def _anonymous_gcs() -> None:
    """Against a GCS emulator, connect anonymously at once, as google-cloud-storage itself does there.

    Beam otherwise first looks for Application Default Credentials with four retries (about 20 s per
    process) before it falls back to an anonymous client, which is what an emulator wants anyway."""
    from apache_beam.internal.gcp import auth

    with auth._Credentials._credentials_lock:
        if not auth._Credentials._credentials_init:
            auth._Credentials._credentials = None
            auth._Credentials._credentials_init = True


def configure_reading(args: argparse.Namespace, *paths: str) -> None:
    """For commands that only read shards (train, export): object stores through Beam when it is
    installed and one of ``paths`` is on an object store, else through pyarrow's filesystems, so these
    commands run where the pipeline's stack (Beam) is not installed."""
    import importlib.util

    set_remote_options(getattr(args, "s3_endpoint_url", None), getattr(args, "s3_region", None))
    remote = [p for p in paths if p and not is_local(p) and not p.startswith("lakefs://")]
    if remote and importlib.util.find_spec("apache_beam") is not None:
        configure(storage_from_args(args))


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for commands that read a run's folder from an object store without a recipe."""
    parser.add_argument(
        "--s3-endpoint-url", metavar="URL", help="S3-compatible server (default: AWS_ENDPOINT_URL_S3 or AWS)."
    )
    parser.add_argument("--s3-region", metavar="REGION", help="S3 region (default: AWS_REGION).")


def storage_from_args(args: argparse.Namespace, base: StorageConfig | None = None) -> StorageConfig:
    """The recipe's storage settings (or none) with the command line's flags over them."""
    from curate.pipelines.runner import StorageConfig

    data = (base or StorageConfig()).model_dump()
    if getattr(args, "s3_endpoint_url", None):
        data["s3_endpoint_url"] = args.s3_endpoint_url
    if getattr(args, "s3_region", None):
        data["s3_region"] = args.s3_region
    return StorageConfig(**data)

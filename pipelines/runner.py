"""Which Beam runner a recipe runs on, and the pipeline options that select it."""

from __future__ import annotations

import argparse
import functools
import logging
import re
import shlex
import sys
from collections.abc import Iterator
from typing import Any, Literal

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.environments import SubprocessSDKEnvironment
from pydantic import Field, field_validator, model_validator

from curate.core.config import CREDENTIAL_NAME, Strict
from curate.pipelines.worker_zygote import WorkerZygote

# Runner options named flink.<key> are Flink configuration entries (flink-conf.yaml) for the job server
# that `curate run --runner flink` starts, and for the mini-cluster it runs with [local] (docs/engines.md).
FLINK_CONF_PREFIX = "flink."
_FLINK_KEY = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


class RunnerConfig(Strict):
    name: Literal["direct", "portable", "dataflow", "flink", "spark", "prism"] = "direct"
    workers: int = Field(2, ge=1, le=1024, description="Worker processes for the direct runner.")
    job_endpoint: str | None = Field(None, description="HOST:PORT of a Beam job service (portable runner).")
    environment_type: str = Field("LOOPBACK", description="SDK harness environment for portable runners.")
    options: dict[str, str | bool | int | float] = Field(
        default_factory=dict, description="Extra Beam pipeline options (name: scalar value)."
    )

    @field_validator("options", mode="before")
    @classmethod
    def _options_are_scalars(cls, value: Any) -> Any:
        # Beam takes options as --name=value; a nested value has no meaning there (and an aliased one can
        # expand without bound when turned into text).
        if isinstance(value, dict):
            for name, option in value.items():
                if not isinstance(option, str | bool | int | float):
                    raise ValueError(
                        f"option '{name}' must be one value (text, number, true/false), not "
                        f"{type(option).__name__}"
                    )
        return value

    shared_paths: bool = Field(
        False,
        description="Local paths in the recipe exist at the same place on every worker (a shared mount); "
        "otherwise a runner whose workers are elsewhere refuses local paths before submitting.",
    )

    def spreads_documents(self, read_units: int) -> bool:
        """Whether the extracted documents are reshuffled over the workers. The readers already share out
        the input units (files, and byte ranges of WARCs over 64 MB), so on the direct runner, with two
        units or more per worker, that shuffle would only send every page's text through the driver once
        more (~7% of the default recipe's CPU on the bench crawl). An engine's parallelism is not known
        here, so engines always spread."""
        if self.name == "direct":
            return self.workers > 1 and read_units < 2 * self.workers
        return True

    @model_validator(mode="after")
    def _portable_needs_endpoint(self) -> RunnerConfig:
        if self.name == "portable" and not self.job_endpoint:
            raise ValueError("runner 'portable' needs job_endpoint (HOST:PORT of a Beam job service)")
        return self

    @field_validator("options")
    @classmethod
    def _no_secrets(cls, options: dict[str, Any]) -> dict[str, Any]:
        # Recipes are committed and copied into manifest.json and the report; a credential would leak.
        for key in sorted(options):
            if carries_credential(key):
                variable = SECRET_OPTIONS.get(key.removeprefix("--"))
                instead = (
                    f"set {variable} in the environment"
                    if variable
                    else "give it to the runner's environment"
                )
                raise ValueError(
                    f"{key} must not be in a recipe: it carries a credential, and recipes are copied into "
                    f"manifest.json, the report and committed versions; {instead} instead"
                )
        return options

    @model_validator(mode="after")
    def _flink_conf_options(self) -> RunnerConfig:
        for name, value in self.options.items():
            if not name.startswith(FLINK_CONF_PREFIX):
                continue
            key = name.removeprefix(FLINK_CONF_PREFIX)
            if self.name != "flink":
                raise ValueError(f"option '{name}' is a Flink setting: it applies to runner 'flink' only")
            if not _FLINK_KEY.fullmatch(key):
                raise ValueError(f"option '{name}': '{key}' is not a Flink configuration key (e.g. a.b-c.d)")
            if any(mark in str(value) for mark in ("\n", "\r", "#")):
                raise ValueError(f"option '{name}': a Flink setting's value is one line without '#'")
        return self

    @property
    def workers_are_elsewhere(self) -> bool:
        """Workers that cannot see the driver's disk: every runner but the local one and LOOPBACK."""
        if self.name == "direct":
            return False
        portable = self.name in ("portable", "flink", "spark")  # flink/spark run through a job server
        return not (portable and self.environment_type.upper() == "LOOPBACK")


# Beam options that carry credentials -> the environment variable that carries them instead.
SECRET_OPTIONS = {
    "s3_access_key_id": "AWS_ACCESS_KEY_ID",
    "s3_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "s3_session_token": "AWS_SESSION_TOKEN",
    "azure_connection_string": "AZURE_STORAGE_CONNECTION_STRING",
    "service_account_key_file": "GOOGLE_APPLICATION_CREDENTIALS",
}


def _subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def beam_credential_options() -> dict[str, str]:
    """Every option of every PipelineOptions subclass imported so far whose name says it carries a
    credential -> the options class that declares it. Derived from Beam's own argparse declarations,
    so options a new Beam release adds are covered without editing a list."""
    found: dict[str, str] = {}
    for options_class in set(_subclasses(PipelineOptions)):
        parser = argparse.ArgumentParser(add_help=False)
        try:
            options_class._add_argparse_args(parser)  # type: ignore[attr-defined]
        except Exception:  # a third-party options class that cannot declare itself twice: not Beam's
            continue
        for action in parser._actions:
            names = [action.dest, *(flag.lstrip("-") for flag in action.option_strings)]
            if any(CREDENTIAL_NAME.search(name) for name in names):
                found.update(dict.fromkeys(names, options_class.__name__))
    return found


@functools.cache
def known_credential_options() -> dict[str, str]:
    """Beam's credential options, scanned once at first use rather than at import (~0.1 CPU-s, which every
    worker process would pay): apache_beam.options.pipeline_options declares the runners' and
    filesystems' options (S3, Azure, GCP, Hadoop ...)."""
    return beam_credential_options()


def carries_credential(option: str) -> bool:
    """Whether a runner option (Beam's, or one passed through to a runner) carries a credential."""
    name = option.removeprefix("--").split("=", 1)[0]
    return name in known_credential_options() or name in SECRET_OPTIONS or bool(CREDENTIAL_NAME.search(name))


class StorageConfig(Strict):
    """Where object stores are. Credentials never go here: S3's come from the environment (AWS_ACCESS_KEY_ID
    and AWS_SECRET_ACCESS_KEY, a profile or an instance role), GCS's from Application Default Credentials;
    a GCS emulator is named by STORAGE_EMULATOR_HOST, as Google's client expects."""

    s3_endpoint_url: str | None = Field(
        None, description="An S3-compatible server (MinIO, Ceph, moto), e.g. http://10.0.0.5:9000; null: AWS."
    )
    s3_region: str | None = Field(None, description="S3 region; null: AWS_REGION / AWS_DEFAULT_REGION.")

    def beam_args(self) -> list[str]:
        """The Beam pipeline options that carry these settings to the driver's and workers' filesystems."""
        args = []
        if self.s3_endpoint_url:
            args.append(f"--s3_endpoint_url={self.s3_endpoint_url}")
        if self.s3_region:
            args.append(f"--s3_region_name={self.s3_region}")
        return args


_RUNNER_CLASSES = {
    "direct": "DirectRunner",
    "portable": "PortableRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "prism": "PrismRunner",
}


class _WorkerModeNotice(logging.Filter):
    """Drops the Fn API runner's notice that several workers want ``direct_running_mode`` set to
    multi_processing: that mode would replace the worker environment `runner_for` gives it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("If direct_num_workers is not equal to 1")


def runner_for(runner: RunnerConfig, options: PipelineOptions, zygote: WorkerZygote | None = None) -> Any:
    """The Beam runner object for a recipe's runner; None lets Beam pick it from ``options``.

    For `direct`, Beam's Fn API runner itself, set up as DirectRunner sets it up for a batch pipeline
    (the pipeline options in its provision info): DirectRunner would first walk the whole graph twice
    (deciding between Prism, the Fn API runner and its bundle-based fallback), ~0.4 CPU-s per run for
    a decision that is always the Fn API runner for curate's batch pipelines. With several workers each
    is a process: forked by ``zygote`` (pipelines/worker_zygote.py), or without one a fresh interpreter,
    as Beam's multi_processing mode starts them."""
    if runner.name != "direct":
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    environment = None
    if runner.workers > 1:
        logger = logging.getLogger(fn_runner.__name__)
        if not any(isinstance(known, _WorkerModeNotice) for known in logger.filters):
            logger.addFilter(_WorkerModeNotice())
        environment = (
            zygote.environment
            if zygote
            else SubprocessSDKEnvironment.from_command_string(
                shlex.join([sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"])
            )
        )
    return fn_runner.FnApiRunner(
        default_environment=environment, provision_info=fn_runner.ExtendedProvisionInfo(info)
    )


def pipeline_options(
    runner: RunnerConfig, temp_location: str, storage: StorageConfig | None = None
) -> PipelineOptions:
    """Beam options for the chosen runner; the direct runner never tries to download Prism. The object
    store settings travel in them to every worker (credentials never do: see curate.object_store)."""
    args = [f"--runner={_RUNNER_CLASSES[runner.name]}", f"--temp_location={temp_location}"]
    args += (storage or StorageConfig()).beam_args()
    if runner.name == "direct":
        # The Fn API runner (runner_for), never DirectRunner's default mode, which first tries to fetch
        # the Prism binary. Its running mode stays in_memory: the worker processes' environment comes
        # from runner_for.
        args += ["--direct_running_mode=in_memory"]
        if runner.workers > 1:
            args += [f"--direct_num_workers={runner.workers}", "--default_sdk_harness_log_level=WARNING"]
    if runner.name == "portable":
        args += [f"--job_endpoint={runner.job_endpoint}", f"--environment_type={runner.environment_type}"]
    for key, value in runner.options.items():
        if key.startswith(FLINK_CONF_PREFIX):  # the job server's flink-conf.yaml, not a pipeline option
            continue
        args.append(f"--{key}" if value is True else f"--{key}={value}")
    return PipelineOptions(args)

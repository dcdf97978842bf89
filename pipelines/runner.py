"""Which Beam runner a recipe runs on, and the pipeline options that select it."""

from __future__ import annotations

from typing import Any, Literal

from apache_beam.options.pipeline_options import PipelineOptions
from pydantic import Field, model_validator

from curate.core.config import Strict


class RunnerConfig(Strict):
    name: Literal["direct", "portable", "dataflow", "flink", "spark", "prism"] = "direct"
    workers: int = Field(2, ge=1, description="Worker processes for the direct runner.")
    job_endpoint: str | None = Field(None, description="HOST:PORT of a Beam job service (portable runner).")
    environment_type: str = Field("LOOPBACK", description="SDK harness environment for portable runners.")
    options: dict[str, Any] = Field(default_factory=dict, description="Extra Beam pipeline options.")

    @model_validator(mode="after")
    def _portable_needs_endpoint(self) -> RunnerConfig:
        if self.name == "portable" and not self.job_endpoint:
            raise ValueError("runner 'portable' needs job_endpoint (HOST:PORT of a Beam job service)")
        return self


_RUNNER_CLASSES = {
    "direct": "DirectRunner",
    "portable": "PortableRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "prism": "PrismRunner",
}


def pipeline_options(runner: RunnerConfig, temp_location: str) -> PipelineOptions:
    """Beam options for the chosen runner; the direct runner never tries to download Prism."""
    args = [f"--runner={_RUNNER_CLASSES[runner.name]}", f"--temp_location={temp_location}"]
    if runner.name == "direct":
        # DirectRunner's default mode first tries to fetch the Prism binary; multi_processing and
        # in_memory run the Fn API runner in-process / in worker processes with nothing downloaded.
        if runner.workers > 1:
            args += [
                "--direct_running_mode=multi_processing",
                f"--direct_num_workers={runner.workers}",
                "--default_sdk_harness_log_level=WARNING",
            ]
        else:
            args += ["--direct_running_mode=in_memory"]
    if runner.name == "portable":
        args += [f"--job_endpoint={runner.job_endpoint}", f"--environment_type={runner.environment_type}"]
    for key, value in runner.options.items():
        args.append(f"--{key}" if value is True else f"--{key}={value}")
    return PipelineOptions(args)

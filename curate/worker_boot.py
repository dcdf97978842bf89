"""`curate-worker-boot`: start one Beam SDK worker the way the SDK container's boot program does.

A Beam worker pool (`python -m apache_beam.runners.worker.worker_pool_main`) started without a container
runs each worker as a bare SdkHarness that never receives the job's pipeline options, so a worker's
filesystems know no S3 endpoint or region, for instance. Given ``--container_executable`` the pool instead
runs that program with the job's endpoints, as Beam's container `boot` does on Dataflow and in the
Flink/Spark worker-pool sidecar. This is that program in Python for pools outside a container (a VM, a
bare-metal node, the tests): it fetches the job's pipeline options from the provisioning service and
hands over to `sdk_worker_main`, which sets the worker's filesystems from them. Artifacts are not
staged: the worker's environment must have curate installed, like the worker image.

    python -m apache_beam.runners.worker.worker_pool_main --service_port 50000 \\
        --container_executable "$(command -v curate-worker-boot)"
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


def _descriptor(url: str) -> str:
    from apache_beam.portability.api import endpoints_pb2
    from google.protobuf import text_format

    return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))


def worker_environment(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment `sdk_worker_main` expects, with the job's options from the provisioning service."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc
    from google.protobuf import json_format

    with grpc.insecure_channel(args.provision_endpoint) as channel:
        stub = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel)
        info = stub.GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", args.id)]
        ).info
    semi_persistent = args.semi_persistent_directory or tempfile.mkdtemp(prefix=f"beam-worker-{args.id}-")
    env = dict(environ)
    env.update(
        WORKER_ID=args.id,
        PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
        CONTROL_API_SERVICE_DESCRIPTOR=_descriptor(args.control_endpoint or info.control_endpoint.url),
        LOGGING_API_SERVICE_DESCRIPTOR=_descriptor(info.logging_endpoint.url or args.logging_endpoint),
        SEMI_PERSISTENT_DIRECTORY=semi_persistent,
        RUNNER_CAPABILITIES=" ".join(info.runner_capabilities),
    )
    if info.status_endpoint.url:
        env["STATUS_API_SERVICE_DESCRIPTOR"] = _descriptor(info.status_endpoint.url)
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="curate-worker-boot", description=__doc__.splitlines()[0])
    parser.add_argument("--id", required=True)
    # A worker pool passes every endpoint; a PROCESS environment (Flink's, Spark's) only --id and
    # --provision_endpoint: the others then come from the provisioning service, as for Beam's own boot.
    parser.add_argument("--logging_endpoint", default="")
    parser.add_argument("--artifact_endpoint", default="")
    parser.add_argument("--provision_endpoint", required=True)
    parser.add_argument("--control_endpoint", default="")
    parser.add_argument("--semi_persistent_directory", "--semi_persist_dir", default="")
    args = parser.parse_args(argv)
    env = worker_environment(args, dict(os.environ))
    command = [sys.executable, "-m", "apache_beam.runners.worker.sdk_worker_main"]
    os.execve(sys.executable, command, env)


if __name__ == "__main__":
    main()

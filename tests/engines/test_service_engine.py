"""The service runs a recipe on an engine its operator configured (`curate serve --engine RUNNER.yaml`):
a request that names the runner gets the operator's runner section (never its own master), the job runs
on Flink's embedded mini-cluster (``flink_master: "[local]"``, parallelism 2), gives the direct runner's
tokens and counts, is committed as a version, and its progress and stats read like a local job's. A
runner the operator did not configure is refused with the runners on offer.

The input has, besides the small real inputs, a document of 1.5 MB of English words (a real sample's
paragraphs, their words shuffled), which the recipe keeps (its quality stage allows up to 1M words):
crawls have multi-MB pages, and Beam's GroupByKeys (the dedup joins, the token shards) are Flink sorts
whose buffers, cut from the mini-cluster's managed memory, must hold the whole record. With Beam's own
managed memory for [local] this run fails ("The record exceeds the maximum size of a sort buffer
(current maximum: 1474560 bytes)", seen here); curate's job server gives the mini-cluster 1g per slot
(docs/engines.md)."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install -e '.[serve]'")


def _request(base: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


LARGE_DOCUMENT_BYTES = 1_500_000
STAGES = {"tokenize": {"shard_tokens": 20000}, "quality": {"gopher_quality": {"max_doc_words": 1_000_000}}}


@pytest.fixture(scope="module")
def service_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("service-root")


@pytest.fixture(scope="module")
def inputs(service_root, servers, jsonl_file) -> list[Path]:
    """The small real inputs and a JSONL file with one document of 1.5 MB: lines of a real sample's
    paragraphs with their words shuffled (seeded), so that no filter of the recipe rejects it."""
    with gzip.open(jsonl_file, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line)["text"] for line in handle]
    paragraphs = [p.split() for text in rows for p in text.split("\n") if len(p.split()) >= 8]
    shuffle = random.Random(0)
    lines: list[str] = []
    size = 0
    while size < LARGE_DOCUMENT_BYTES:
        words = list(shuffle.choice(paragraphs))
        shuffle.shuffle(words)
        lines.append(" ".join(words).capitalize().rstrip(".") + ".")
        size += len(lines[-1].encode()) + 1
    large = service_root / "large-document.jsonl"
    large.write_text(json.dumps({"id": "large-document", "text": "\n".join(lines)}) + "\n", encoding="utf-8")
    return [*servers.small_inputs(), large]


@pytest.fixture(scope="module")
def direct_reference(direct_run, inputs):
    return direct_run(inputs, stages=STAGES)


@pytest.fixture(scope="module")
def service(engines_fetched, service_root, servers, shared_data):
    root = service_root
    engine = root / "flink.yaml"
    engine.write_text(
        yaml.safe_dump(
            {"runner": {"name": "flink", "options": {"flink_master": "[local]", "parallelism": 2}}}
        )
    )
    port = servers.free_port()
    command = [sys.executable, "-m", "curate", "serve", "--port", str(port), "--root", str(root)]
    command += ["--root", str(shared_data), "--state", str(root / ".state"), "--engine", str(engine)]
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "CURATE_STORE": str(root / "store")}
    )
    try:
        servers.wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_a_run_on_flinks_mini_cluster_through_the_service_equals_the_direct_run_and_is_committed(
    service, inputs, direct_reference, same_as_direct
):
    # The request's own master is ignored: the operator's runner section is what runs.
    # (localhost:1: nothing listens there; a run that used it would fail.)
    recipe = (
        "runner: {name: flink, options: {flink_master: 'localhost:1'}}\n"
        f"stages: {json.dumps(STAGES)}\noutput: {{dataset: web}}\n"
    )
    status, body = _request(
        service, "POST", "/api/runs", {"recipe": recipe, "input": [str(p) for p in inputs]}
    )
    assert status == 201, body
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        job = _request(service, "GET", f"/api/runs/{body['id']}")[1]
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            break
        time.sleep(1)
    assert job["status"] == "succeeded", job.get("error")
    tokens, counts = direct_reference
    assert counts["read"][1] == 33  # the small inputs' 32 documents and the large one
    assert len(tokens["large-document"]) > 300_000  # kept: through the dedup and shard GroupByKeys
    assert [(s["stage"], s["in"], s["out"]) for s in job["progress"]["stages"]] == [
        (name, entry[0], entry[1]) for name, entry in counts.items()
    ]
    assert job["progress"]["fraction"] == 1.0
    out = Path(job["output"])
    same_as_direct(out, json.loads((out / "stats.json").read_text()), direct_reference)
    status, log = _request(service, "GET", "/api/datasets/web/log")
    assert status == 200 and log["commits"], log  # committed as a version of dataset web
    manifest = json.loads((out / "manifest.json").read_text())
    runner = manifest["config"]["runner"]  # what ran: the operator's section, not the request's
    assert runner["name"] == "flink" and runner["options"]["flink_master"] == "[local]"


def test_a_runner_the_operator_did_not_configure_is_refused(service, servers):
    inputs = [str(p) for p in servers.small_inputs()]
    status, body = _request(
        service, "POST", "/api/runs", {"recipe": "runner: {name: spark}\n", "input": inputs}
    )
    assert status == 422
    assert "direct, flink" in json.dumps(body)

"""A real lakeFS server for tests and benchmarks, on 127.0.0.1.

The binary is built from lakeFS's published Go module source by ``tools/lakefs_build.sh`` (once per version,
cached under ~/.cache/curate/lakefs/<version>/; ``make lakefs-server`` runs it). Each server gets a folder
of its own for lakeFS's local metadata store (``database.type: local``) and its blockstore: local files
(``blockstore.type: local``), or an S3 server such as moto's (``blockstore.type: s3``), which is what
lakeFS's zero-copy import reads from. The admin's credentials are made for the server through lakeFS's
setup API (``POST /api/v1/setup_lakefs``), as ``lakectl``/the UI do on a fresh installation.

Also usable by hand: ``python tests/support/lakefs_server.py`` starts one and prints the LAKEFS_* variables.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools" / "lakefs_build.sh"


class LakeFSUnavailable(RuntimeError):
    """The lakeFS binary is not built (``make lakefs-server``) or could not be built."""


def binary(build: bool = False) -> Path:
    """The cached lakeFS binary; built first when ``build`` (minutes: see tools/lakefs_build.sh)."""
    env = {**os.environ, "LAKEFS_BUILD_CHECK_ONLY": "" if build else "1"}
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise LakeFSUnavailable(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    return Path(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3Blockstore:
    """lakeFS's S3 blockstore on an S3 API server (moto's, in the tests)."""

    endpoint: str
    access_key_id: str
    secret_access_key: str = field(repr=False)

    def config(self) -> dict[str, Any]:
        return {
            "type": "s3",
            "s3": {
                "endpoint": self.endpoint,
                "force_path_style": True,
                "discover_bucket_region": False,
                "region": "us-east-1",
                "credentials": {
                    "access_key_id": self.access_key_id,
                    "secret_access_key": self.secret_access_key,
                },
            },
        }


class LakeFSServer:
    """One lakeFS process with its own metadata and data under ``root``; ``start()`` returns the endpoint."""

    def __init__(self, root: Path, s3: S3Blockstore | None = None, username: str = "curate-admin"):
        self.root = Path(root)
        self.s3 = s3
        self.username = username
        self.endpoint = ""
        self.access_key_id = ""
        self.secret_access_key = ""
        self.process: subprocess.Popen | None = None
        self.log_path = self.root / "lakefs.log"

    # ----------------------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 60.0) -> str:
        executable = binary()
        self.root.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        blockstore = (
            self.s3.config() if self.s3 else {"type": "local", "local": {"path": str(self.root / "data")}}
        )
        config = {
            "listen_address": f"127.0.0.1:{port}",
            "logging": {"level": "WARN", "format": "text", "output": str(self.log_path)},
            "database": {"type": "local", "local": {"path": str(self.root / "metadata")}},
            "blockstore": blockstore,
            "auth": {"encrypt": {"secret_key": secrets.token_hex(16)}},
            "stats": {"enabled": False},  # no usage reports to the network
            # no calls out: lakeFS checks its release for advisories at start and then every interval
            # (0 would loop without pause), and asks for the latest version
            "security": {
                "audit_check_url": "http://127.0.0.1:9/audit",
                "audit_check_interval": "8760h",
                "check_latest_version": False,
            },
        }
        config_path = self.root / "lakefs.yaml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEFS_", "LAKECTL_"))}
        env["HOME"] = str(self.root)  # lakeFS reads ~/.lakefs.yaml when present: never a user's
        with open(self.root / "lakefs.out", "wb") as out:
            self.process = subprocess.Popen(
                [str(executable), "run", "-c", str(config_path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.endpoint = f"http://127.0.0.1:{port}"
        self._wait_healthy(timeout)
        self.access_key_id = "AKIAC" + secrets.token_hex(6).upper()
        self.secret_access_key = secrets.token_urlsafe(30)
        self._post(
            "/api/v1/setup_lakefs",
            {
                "username": self.username,
                "key": {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key},
            },
            auth=False,
        )
        return self.endpoint

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"lakeFS exited at start; see {self.root / 'lakefs.out'}: {self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/_health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"lakeFS did not answer on {self.endpoint} within {timeout:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        text = ""
        for path in (self.root / "lakefs.out", self.log_path):
            if path.is_file():
                text += path.read_text(errors="replace")[-1500:]
        return text

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.process = None

    def __enter__(self) -> LakeFSServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ admin API

    def _post(self, path: str, body: dict, auth: bool = True) -> Any:
        request = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(self._auth_header() if auth else {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                data = response.read()
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")[:500]
            raise RuntimeError(f"lakeFS: POST {path} answered {error.code}: {body}") from None
        return json.loads(data) if data.strip() else None

    def _auth_header(self) -> dict[str, str]:
        import base64

        token = base64.b64encode(f"{self.access_key_id}:{self.secret_access_key}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def storage_namespace(self, name: str) -> str:
        """Where a new repository keeps its objects: under this server's blockstore."""
        return f"s3://lakefs/{name}" if self.s3 else f"local://{name}"

    def create_repository(
        self, name: str, default_branch: str = "main", storage_namespace: str | None = None
    ) -> None:
        self._post(
            "/api/v1/repositories",
            {
                "name": name,
                "storage_namespace": storage_namespace or self.storage_namespace(name),
                "default_branch": default_branch,
            },
        )

    def create_user_without_permissions(self, name: str) -> tuple[str, str]:
        """A user in no group (so no policy): its own access key, which lakeFS answers with 403."""
        self._post("/api/v1/auth/users", {"id": name})
        created = self._post(f"/api/v1/auth/users/{name}/credentials", {})
        return created["access_key_id"], created["secret_access_key"]


def main() -> None:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="curate-lakefs-"))
    binary(build=True)
    server = LakeFSServer(root)
    try:
        server.start()
        print(f"export LAKEFS_ENDPOINT={server.endpoint}")
        print(f"export LAKEFS_ACCESS_KEY_ID={server.access_key_id}")
        print(f"export LAKEFS_SECRET_ACCESS_KEY='{server.secret_access_key}'")
        print(f"# data and logs in {root}; Ctrl-C stops the server", flush=True)
        server.process.wait()  # type: ignore[union-attr]
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""An in-process lakeFS API server for tests: real HTTP on 127.0.0.1, the routes curate's lakeFS backend calls
and nothing else, with request and response bodies built and checked by lakefs-sdk's own models.

No lakeFS server can run on the machines that test curate, so this implements the contract: the lakeFS REST
API v1 (``/api/v1``, lakeFS's api/swagger.yml as generated into lakefs-sdk 1.88): repositories, branches
with staging, commits, first-parent logs, two- and three-dot diffs, three-way merges with lakeFS's merge
strategies, tags, objects with ranged reads and streamed ``application/octet-stream`` uploads, and zero-copy
imports from S3 (start, status, cancel: lakeFS's ``catalog.Import`` walks the source prefix with
ListObjectsV2, records each object's ``s3://bucket/key`` as its physical address with its size and ETag,
refuses sources inside the repository's storage namespace, and commits on the branch replacing everything
under the destination prefixes; an S3 repository's objects, imported or uploaded, live on the S3 server
given as ``s3_endpoint`` and are read from there). Errors are lakeFS's ``Error`` body ({"message": ...})
with its documented statuses: 401 bad credentials, 404 missing repository/branch/ref/object, 409 existing
branch or tag and merge conflicts, 412 ``If-None-Match: *`` on an existing object, 400 validation errors (a
branch name lakeFS rejects, a commit with no changes). A route it does not implement answers 501, so a
backend that starts calling something new fails its tests instead of passing by accident. Object bytes live
in files, so memory stays flat when a test uploads a large shard. Not a lakeFS replacement: no auth other
than basic access keys, no garbage collection, no multipart form uploads, imports from S3 only.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import json
import re
import secrets
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from lakefs_sdk import models

API = "/api/v1"
BRANCH_ID = re.compile(r"^\w[-\w]*$")  # lakeFS's ReValidBranchID
CHUNK = 1 << 20


def _flag(value: str | None) -> bool:
    """A boolean query parameter as lakeFS (Go's strconv.ParseBool) reads it; lakefs-sdk sends "True"."""
    if value is None:
        return False
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ApiError(400, f"validation error: {value!r} is not a boolean")


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class FakeLakeFS:
    """State and routes; ``start()`` serves them and returns the endpoint URL."""

    def __init__(
        self,
        root: Path,
        access_key_id: str = "AKIAFAKELAKEFS",
        secret_access_key: str = "fake-secret",
        s3_endpoint: str | None = None,
    ):
        self.root = Path(root)
        self.s3_endpoint = s3_endpoint  # the S3 server of s3:// storage namespaces and import sources
        self._s3: Any = None
        self.imports: dict[str, dict[str, Any]] = {}
        self.import_delay = 0.0  # seconds an import spends "walking" before it commits (tests of cancel)
        self.object_reads: list[str] = []  # path of every GET .../objects, for tests of what a reader fetches
        self.root.mkdir(parents=True, exist_ok=True)
        self.access_key_id, self.secret_access_key = access_key_id, secret_access_key
        self.repos: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()
        self.calls: list[tuple[str, str]] = []  # (method, route) of every request, for tests
        self.object_bytes_sent = 0  # object content served by GET .../objects, for tests of ranged reads
        self._clock = itertools.count()
        self._server: ThreadingHTTPServer | None = None

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> str:
        server = _Server(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return f"http://127.0.0.1:{server.server_address[1]}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def create_repository(
        self, name: str, default_branch: str = "main", storage_namespace: str | None = None
    ) -> None:
        """A repository; an ``s3://bucket/prefix`` namespace keeps its objects on the S3 server."""
        with self.lock:
            repo: dict[str, Any] = {
                "id": name,
                "default_branch": default_branch,
                "storage_namespace": storage_namespace or f"local://{self.root / name}",
                "creation_date": int(time.time()),
                "commits": {},
                "branches": {},
                "tags": {},
            }
            first = self._new_commit(repo, [], {}, "Repository created", {})
            repo["branches"][default_branch] = {"head": first, "staged": {}}
            self.repos[name] = repo

    # -------------------------------------------------------------------------------- model

    def _new_commit(self, repo: dict, parents: list[str], tree: dict, message: str, metadata: dict) -> str:
        tick = next(self._clock)
        meta_range = hashlib.sha256(json.dumps(sorted((p, e["checksum"]) for p, e in tree.items())).encode())
        body = json.dumps([parents, meta_range.hexdigest(), message, metadata, tick], sort_keys=True)
        commit_id = hashlib.sha256(body.encode()).hexdigest()
        generation = 1 + max((repo["commits"][p]["model"].generation or 0 for p in parents), default=0)
        model = models.Commit(
            id=commit_id,
            parents=parents,
            committer="admin",
            message=message,
            creation_date=int(time.time()),
            meta_range_id=meta_range.hexdigest(),
            metadata=metadata,
            generation=generation,
            version=1,
        )
        repo["commits"][commit_id] = {"model": model, "tree": dict(tree), "tick": tick}
        return commit_id

    def _repo(self, name: str) -> dict:
        if name not in self.repos:
            raise ApiError(404, "repository not found")
        return self.repos[name]

    def _branch(self, repo: dict, name: str) -> dict:
        if name not in repo["branches"]:
            raise ApiError(404, "branch not found")
        return repo["branches"][name]

    def _resolve(self, repo: dict, ref: str) -> str:
        if ref in repo["branches"]:
            return repo["branches"][ref]["head"]
        if ref in repo["tags"]:
            return repo["tags"][ref]
        if ref in repo["commits"]:
            return ref
        raise ApiError(404, f"ref {ref} not found")

    def _tree(self, repo: dict, ref: str, staged: bool = True) -> dict:
        """What a ref reads as: a branch includes its uncommitted (staged) changes."""
        tree = dict(repo["commits"][self._resolve(repo, ref)]["tree"])
        if staged and ref in repo["branches"]:
            for path, entry in repo["branches"][ref]["staged"].items():
                if entry is None:
                    tree.pop(path, None)
                else:
                    tree[path] = entry
        return tree

    def _ancestors(self, repo: dict, commit_id: str) -> list[str]:
        """commit_id and its ancestors, newest first (lakeFS orders a log by generation and date)."""
        seen, todo = {commit_id}, [commit_id]
        while todo:
            for parent in repo["commits"][todo.pop()]["model"].parents:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return sorted(seen, key=lambda c: repo["commits"][c]["tick"], reverse=True)

    def _merge_base(self, repo: dict, a: str, b: str) -> str | None:
        common = set(self._ancestors(repo, a)) & set(self._ancestors(repo, b))
        return max(common, key=lambda c: repo["commits"][c]["tick"]) if common else None

    @staticmethod
    def _identity(entry: dict | None) -> tuple | None:
        return None if entry is None else (entry["checksum"], entry["size_bytes"])

    @staticmethod
    def _page(items: list, key: Any, query: dict, maximum: int = 1000) -> tuple[list, models.Pagination]:
        after = query.get("after", "")
        amount = int(query.get("amount", 100))
        amount = maximum if amount < 0 or amount > maximum else amount
        rest = [item for item in items if key(item) > after] if after else items
        page = rest[:amount]
        has_more = len(rest) > amount
        pagination = models.Pagination(
            has_more=has_more,
            next_offset=key(page[-1]) if has_more else "",
            results=len(page),
            max_per_page=maximum,
        )
        return page, pagination

    def _stats(self, path: str, entry: dict) -> models.ObjectStats:
        return models.ObjectStats.from_dict(
            {
                "path": path,
                "path_type": "object",
                "physical_address": entry["physical_address"],
                "checksum": entry["checksum"],
                "size_bytes": entry["size_bytes"],
                "mtime": entry["mtime"],
                "content_type": entry["content_type"],
                "metadata": {},
            }
        )

    # ------------------------------------------------------------------------------- routes

    def handle(self, method: str, path: str, query: dict, headers: Any, body: Any) -> tuple[int, Any, dict]:
        """(status, model or bytes or file spec, headers) for one request; raises ApiError."""
        self._authenticate(headers)
        parts = [unquote(p) for p in path[len(API) :].strip("/").split("/")] if path.startswith(API) else []
        if len(parts) < 2 or parts[0] != "repositories":
            raise ApiError(501, f"fake lakeFS: {method} {path} is not implemented")
        repo_name, rest = parts[1], parts[2:]
        route = self._route(method, rest)
        self.calls.append(
            (method, "/repositories/{repository}/" + route if route else "/repositories/{repository}")
        )
        with self.lock:
            repo = self._repo(repo_name)
        handler = getattr(self, "_r_" + re.sub(r"\W+", "_", f"{method}_{route}").strip("_"), None)
        if handler is None:
            raise ApiError(501, f"fake lakeFS: {method} {route} is not implemented")
        return handler(repo, rest, query, headers, body)

    @staticmethod
    def _route(method: str, rest: list[str]) -> str:
        templates = {
            (): "",
            ("branches",): "branches",
            ("branches", None): "branches/{branch}",
            ("branches", None, "commits"): "branches/{branch}/commits",
            ("branches", None, "objects"): "branches/{branch}/objects",
            ("branches", None, "objects", "delete"): "branches/{branch}/objects/delete",
            ("branches", None, "import"): "branches/{branch}/import",
            ("refs", None, "commits"): "refs/{ref}/commits",
            ("refs", None, "diff", None): "refs/{leftRef}/diff/{rightRef}",
            ("refs", None, "merge", None): "refs/{sourceRef}/merge/{destinationBranch}",
            ("refs", None, "objects"): "refs/{ref}/objects",
            ("refs", None, "objects", "ls"): "refs/{ref}/objects/ls",
            ("refs", None, "objects", "stat"): "refs/{ref}/objects/stat",
            ("commits", None): "commits/{commitId}",
            ("tags",): "tags",
            ("tags", None): "tags/{tag}",
        }
        for template, route in templates.items():
            if len(template) == len(rest) and all(
                t is None or t == r for t, r in zip(template, rest, strict=True)
            ):
                return route
        return "/".join(rest)

    def _authenticate(self, headers: Any) -> None:
        header = headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.access_key_id}:{self.secret_access_key}".encode()).decode()
        if header != f"Basic {expected}":
            raise ApiError(401, "error authenticating request")

    def _r_GET(self, repo, rest, query, headers, body):
        return (
            200,
            models.Repository(
                id=repo["id"],
                creation_date=repo["creation_date"],
                default_branch=repo["default_branch"],
                storage_namespace=repo["storage_namespace"],
                read_only=False,
            ),
            {},
        )

    def _r_GET_branches(self, repo, rest, query, headers, body):
        with self.lock:
            refs = [models.Ref(id=n, commit_id=b["head"]) for n, b in sorted(repo["branches"].items())]
        page, pagination = self._page(refs, lambda r: r.id, query)
        return 200, models.RefList(pagination=pagination, results=page), {}

    def _r_POST_branches(self, repo, rest, query, headers, body):
        creation = models.BranchCreation.from_json(body())
        if not BRANCH_ID.match(creation.name):
            raise ApiError(400, f"validation error: branch name {creation.name!r}")
        with self.lock:
            if creation.name in repo["branches"] and not creation.force:
                raise ApiError(409, "branch already exists")
            head = self._resolve(repo, creation.source)
            repo["branches"][creation.name] = {"head": head, "staged": {}}
        return 201, head.encode(), {"Content-Type": "text/html"}

    def _r_GET_branches_branch(self, repo, rest, query, headers, body):
        with self.lock:
            return 200, models.Ref(id=rest[1], commit_id=self._branch(repo, rest[1])["head"]), {}

    def _r_DELETE_branches_branch(self, repo, rest, query, headers, body):
        with self.lock:
            self._branch(repo, rest[1])
            if rest[1] == repo["default_branch"]:
                raise ApiError(403, "cannot delete the default branch")
            del repo["branches"][rest[1]]
        return 204, b"", {}

    def _r_POST_branches_branch_commits(self, repo, rest, query, headers, body):
        creation = models.CommitCreation.from_json(body())
        with self.lock:
            branch = self._branch(repo, rest[1])
            tree = self._tree(repo, rest[1])
            if not branch["staged"] and not creation.allow_empty:
                raise ApiError(400, "commit: no changes")
            commit_id = self._new_commit(
                repo, [branch["head"]], tree, creation.message, creation.metadata or {}
            )
            branch["head"], branch["staged"] = commit_id, {}
            return 201, repo["commits"][commit_id]["model"], {}

    def _r_POST_branches_branch_objects(self, repo, rest, query, headers, body):
        path = query.get("path")
        if not path:
            raise ApiError(400, "validation error: path is required")
        content_type = headers.get("Content-Type", "")
        if not content_type.startswith("application/octet-stream"):
            raise ApiError(
                501, f"fake lakeFS: upload as {content_type or 'no content type'} is not implemented"
            )
        with self.lock:
            self._branch(repo, rest[1])
            exists = path in self._tree(repo, rest[1])
        if headers.get("If-None-Match") == "*" and exists:
            raise ApiError(412, "precondition failed: object exists")
        blob = self.root / "blobs" / uuid.uuid4().hex
        blob.parent.mkdir(parents=True, exist_ok=True)
        md5, size = hashlib.md5(usedforsecurity=False), 0
        with open(blob, "wb") as handle:
            for chunk in body(stream=True):
                md5.update(chunk)
                size += len(chunk)
                handle.write(chunk)
        address = f"local://{blob}"
        namespace = repo["storage_namespace"]
        if namespace.startswith("s3://"):  # the object goes to the repository's bucket, as lakeFS puts it
            bucket, _, prefix = namespace[len("s3://") :].partition("/")
            key = "/".join(p for p in (prefix.strip("/"), "data", uuid.uuid4().hex) if p)
            self.s3().upload_file(str(blob), bucket, key)
            blob.unlink()
            address, blob = f"s3://{bucket}/{key}", None
        entry = {
            "physical_address": address,
            "checksum": md5.hexdigest(),
            "size_bytes": size,
            "mtime": int(time.time()),
            "content_type": "application/octet-stream",
            "blob": blob,
        }
        with self.lock:
            self._branch(repo, rest[1])["staged"][path] = entry
        return 201, self._stats(path, entry), {}

    def _r_POST_branches_branch_objects_delete(self, repo, rest, query, headers, body):
        paths = models.PathList.from_json(body()).paths
        if len(paths) > 1000:
            raise ApiError(400, "validation error: at most 1000 paths")
        with self.lock:
            branch = self._branch(repo, rest[1])
            tree = self._tree(repo, rest[1])
            for path in paths:
                if path in tree:
                    branch["staged"][path] = None
        return 200, models.ObjectErrorList(errors=[]), {}

    def _r_GET_refs_ref_commits(self, repo, rest, query, headers, body):
        with self.lock:
            head = self._resolve(repo, rest[1])
            if _flag(query.get("first_parent")):
                chain, current = [], head
                while current:
                    chain.append(current)
                    parents = repo["commits"][current]["model"].parents
                    current = parents[0] if parents else None
            else:
                chain = self._ancestors(repo, head)
            commits = [repo["commits"][c]["model"] for c in chain]
        after = query.get("after")
        if after:
            ids = [c.id for c in commits]
            commits = commits[ids.index(after) + 1 :] if after in ids else []
        amount = min(int(query.get("amount", 100)), 1000)
        page = commits[:amount]
        has_more = len(commits) > amount and not _flag(query.get("limit"))
        pagination = models.Pagination(
            has_more=has_more,
            next_offset=page[-1].id if has_more else "",
            results=len(page),
            max_per_page=1000,
        )
        return 200, models.CommitList(pagination=pagination, results=page), {}

    def _r_GET_refs_leftRef_diff_rightRef(self, repo, rest, query, headers, body):
        with self.lock:
            left, right = self._resolve(repo, rest[1]), self._resolve(repo, rest[3])
            if query.get("type", "three_dot") == "three_dot":
                left = self._merge_base(repo, left, right) or left
            a, b = repo["commits"][left]["tree"], repo["commits"][right]["tree"]
        diffs = []
        for path in sorted(a.keys() | b.keys()):
            if path.startswith(query.get("prefix", "")) and self._identity(a.get(path)) != self._identity(
                b.get(path)
            ):
                kind = "added" if path not in a else "removed" if path not in b else "changed"
                size = (b.get(path) or a[path])["size_bytes"]
                diffs.append(models.Diff(type=kind, path=path, path_type="object", size_bytes=size))
        page, pagination = self._page(diffs, lambda d: d.path, query)
        return 200, models.DiffList(pagination=pagination, results=page), {}

    def _r_POST_refs_sourceRef_merge_destinationBranch(self, repo, rest, query, headers, body):
        text = body()
        merge = models.Merge.from_json(text) if text.strip() else models.Merge()
        if merge.strategy not in (None, "", "source-wins", "dest-wins"):
            raise ApiError(400, f"validation error: strategy {merge.strategy!r}")
        with self.lock:  # the whole merge is one compare-and-swap on the destination's head
            destination = self._branch(repo, rest[3])
            if destination["staged"]:
                raise ApiError(400, "uncommitted changes (dirty branch)")
            source, dest_head = self._resolve(repo, rest[1]), destination["head"]
            base = self._merge_base(repo, source, dest_head)
            trees = [repo["commits"][c]["tree"] if c else {} for c in (base, source, dest_head)]
            merged, conflicts = {}, []
            for path in sorted(set().union(*trees)):
                b, s, d = (t.get(path) for t in trees)
                ib, i_s, i_d = (self._identity(e) for e in (b, s, d))
                if i_s in (i_d, ib):
                    chosen = d
                elif i_d == ib:
                    chosen = s
                elif merge.strategy in ("source-wins", "dest-wins"):
                    chosen = s if merge.strategy == "source-wins" else d
                else:
                    conflicts.append(path)
                    continue
                if chosen is not None:
                    merged[path] = chosen
            if conflicts:
                raise ApiError(409, "conflict found")
            if merged == trees[2] and not (merge.allow_empty or merge.force):
                raise ApiError(400, "no changes")
            message = merge.message or f"Merge '{rest[1]}' into '{rest[3]}'"
            commit_id = self._new_commit(repo, [dest_head, source], merged, message, merge.metadata or {})
            destination["head"] = commit_id
        return 200, models.MergeResult(reference=commit_id), {}

    def _object(self, repo: dict, ref: str, query: dict) -> tuple[str, dict]:
        path = query.get("path")
        if not path:
            raise ApiError(400, "validation error: path is required")
        with self.lock:
            entry = self._tree(repo, ref).get(path)
        if entry is None:
            raise ApiError(404, "object not found")
        return path, entry

    def _r_GET_refs_ref_objects(self, repo, rest, query, headers, body):
        path, entry = self._object(repo, rest[1], query)
        size, start, end, status = entry["size_bytes"], 0, entry["size_bytes"] - 1, 200
        extra = {"ETag": f'"{entry["checksum"]}"', "Content-Type": entry["content_type"]}
        ranged = headers.get("Range")
        if ranged:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip())
            if not match or not (match.group(1) or match.group(2)):
                raise ApiError(416, "requested range not satisfiable")
            if match.group(1):
                start, end = int(match.group(1)), min(int(match.group(2) or size - 1), size - 1)
            else:
                start, end = max(0, size - int(match.group(2))), size - 1
            if start >= size or start > end:
                raise ApiError(416, "requested range not satisfiable")
            status = 206
            extra["Content-Range"] = f"bytes {start}-{end}/{size}"
        with self.lock:
            self.object_reads.append(path)
        if entry["blob"] is None:  # on the S3 server (imported, or uploaded to an s3:// namespace)
            return status, ("s3", entry["physical_address"], start, end - start + 1), extra
        return status, ("file", entry["blob"], start, end - start + 1), extra

    def _r_GET_refs_ref_objects_stat(self, repo, rest, query, headers, body):
        path, entry = self._object(repo, rest[1], query)
        return 200, self._stats(path, entry), {}

    def _r_GET_refs_ref_objects_ls(self, repo, rest, query, headers, body):
        if query.get("delimiter"):
            raise ApiError(501, "fake lakeFS: listing with a delimiter is not implemented")
        with self.lock:
            tree = self._tree(repo, rest[1])
        prefix = query.get("prefix", "")
        items = [self._stats(p, tree[p]) for p in sorted(tree) if p.startswith(prefix)]
        page, pagination = self._page(items, lambda o: o.path, query)
        return 200, models.ObjectStatsList(pagination=pagination, results=page), {}

    def _r_GET_commits_commitId(self, repo, rest, query, headers, body):
        with self.lock:
            if rest[1] not in repo["commits"]:
                raise ApiError(404, "commit not found")
            return 200, repo["commits"][rest[1]]["model"], {}

    def _r_GET_tags(self, repo, rest, query, headers, body):
        with self.lock:
            refs = [models.Ref(id=n, commit_id=c) for n, c in sorted(repo["tags"].items())]
        page, pagination = self._page(refs, lambda r: r.id, query)
        return 200, models.RefList(pagination=pagination, results=page), {}

    def _r_POST_tags(self, repo, rest, query, headers, body):
        creation = models.TagCreation.from_json(body())
        with self.lock:
            if creation.id in repo["tags"] and not creation.force:
                raise ApiError(409, "tag already exists")
            commit_id = self._resolve(repo, creation.ref)
            repo["tags"][creation.id] = commit_id
        return 201, models.Ref(id=creation.id, commit_id=commit_id), {}

    def _r_GET_tags_tag(self, repo, rest, query, headers, body):
        with self.lock:
            if rest[1] not in repo["tags"]:
                raise ApiError(404, "tag not found")
            return 200, models.Ref(id=rest[1], commit_id=repo["tags"][rest[1]]), {}

    # ------------------------------------------------------------------------------ imports

    def s3(self) -> Any:
        """A client of the S3 server behind s3:// namespaces and import sources (credentials from the
        environment, as lakeFS's own S3 blockstore takes them)."""
        if self._s3 is None:
            if not self.s3_endpoint:
                raise ApiError(500, "fake lakeFS: no S3 server configured (s3_endpoint)")
            import boto3

            self._s3 = boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1")
        return self._s3

    def _r_POST_branches_branch_import(self, repo, rest, query, headers, body):
        creation = models.ImportCreation.from_json(body())
        namespace = repo["storage_namespace"]
        with self.lock:
            self._branch(repo, rest[1])
        if not namespace.startswith("s3://"):
            raise ApiError(403, "import is not supported for this storage")
        for location in creation.paths:  # lakeFS's verifyImportPaths
            if location.path.startswith(namespace):
                raise ApiError(
                    400,
                    f"import path ({location.path}) in repository namespace ({namespace}) is prohibited:"
                    " invalid import source",
                )
            if location.type == "common_prefix" and namespace.startswith(location.path):
                raise ApiError(
                    400,
                    f"prefix ({location.path}) contains repository namespace: ({namespace}), invalid import"
                    " source",
                )
        import_id = secrets.token_hex(10)  # lakeFS uses an xid: 20 characters
        status = {"completed": False, "update_time": _now(), "ingested_objects": 0, "error": None}
        with self.lock:
            self.imports[import_id] = {"repo": repo["id"], "status": status, "commit": None}
        worker = threading.Thread(target=self._run_import, args=(repo, rest[1], import_id, creation))
        worker.daemon = True
        worker.start()
        return 202, models.ImportCreationResponse(id=import_id), {}

    def _import_record(self, repo: dict, query: dict) -> dict:
        import_id = query.get("id")
        if not import_id:
            raise ApiError(400, "validation error: id is required")
        record = self.imports.get(import_id)
        if record is None or record["repo"] != repo["id"]:
            raise ApiError(404, "import not found")
        return record

    def _r_GET_branches_branch_import(self, repo, rest, query, headers, body):
        with self.lock:
            record = self._import_record(repo, query)
            status = dict(record["status"])
            commit = record["commit"]
        model = models.ImportStatus(
            completed=status["completed"],
            update_time=status["update_time"],
            ingested_objects=status["ingested_objects"],
            metarange_id=commit.meta_range_id if commit else None,
            commit=commit,
            error=models.Error(message=status["error"]) if status["error"] else None,
        )
        return 200, model, {}

    def _r_DELETE_branches_branch_import(self, repo, rest, query, headers, body):
        with self.lock:
            record = self._import_record(repo, query)
            if record["status"]["completed"]:
                raise ApiError(409, "conflict found")  # lakeFS: not canceling an import already completed
            record["status"].update(error="Canceled", update_time=_now())
        return 204, b"", {}

    def _walk(self, location: Any) -> list[tuple[str, dict]]:
        """lakeFS's S3 walker: ListObjectsV2 under the source, keys relative to its last '/'."""
        if not location.path.startswith("s3://"):
            raise ValueError(f"import path {location.path} does not match the blockstore type s3")
        bucket, _, prefix = location.path[len("s3://") :].partition("/")
        base = prefix[: prefix.rfind("/") + 1]
        prepend = location.destination
        if prepend and not prepend.endswith("/"):
            prepend += "/"
        found = []
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                path = location.destination if location.type == "object" else prepend + key[len(base) :]
                entry = {
                    "physical_address": f"s3://{bucket}/{key}",
                    "checksum": item["ETag"].strip('"'),
                    "size_bytes": item["Size"],
                    "mtime": int(item["LastModified"].timestamp()),
                    "content_type": "application/octet-stream",
                    "blob": None,
                }
                found.append((path, entry))
        return found

    def _run_import(self, repo: dict, branch_name: str, import_id: str, creation: Any) -> None:
        record = self.imports[import_id]
        try:
            entries = []
            for location in creation.paths:
                for path, entry in self._walk(location):
                    entries.append((path, entry))
                    with self.lock:
                        record["status"].update(ingested_objects=len(entries), update_time=_now())
            time.sleep(self.import_delay)
            with self.lock:
                if record["status"]["error"]:  # cancelled meanwhile
                    return
                branch = self._branch(repo, branch_name)
                if branch["staged"]:
                    raise ApiError(400, f"{branch_name}: uncommitted changes (dirty branch)")
                prefixes = [location.destination for location in creation.paths]
                tree = {
                    path: entry
                    for path, entry in repo["commits"][branch["head"]]["tree"].items()
                    if not any(path.startswith(prefix) for prefix in prefixes)
                }
                tree.update(entries)
                metadata = {**(creation.commit.metadata or {}), ".lakefs.merge.strategy": "source-wins"}
                message = creation.commit.message or "Import objects"
                commit_id = self._new_commit(repo, [branch["head"]], tree, message, metadata)
                branch["head"] = commit_id
                record["commit"] = repo["commits"][commit_id]["model"]
                record["status"].update(completed=True, update_time=_now())
        except Exception as error:  # lakeFS records the failure in the import's status
            message = error.message if isinstance(error, ApiError) else f"{type(error).__name__}: {error}"
            with self.lock:
                record["status"].update(error=f"error on ingest: {message}", update_time=_now())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):  # RFC 3339, as lakeFS's Go server writes a date-time
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client killed mid-upload is expected
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 (keep-alive, as the SDK's connection pool expects) in front of one FakeLakeFS."""

    protocol_version = "HTTP/1.1"
    fake: FakeLakeFS

    def setup(self) -> None:
        super().setup()  # no Nagle delay between a response's header and body writes (40 ms per request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _body_reader(self):
        consumed = {"done": False}

        def body(stream: bool = False):
            consumed["done"] = True
            chunks = self._chunks()
            if stream:
                return chunks
            return b"".join(chunks).decode("utf-8")

        return body, consumed

    def _chunks(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(CHUNK, remaining))
                    if not chunk:
                        return
                    remaining -= len(chunk)
                    yield chunk
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body, consumed = self._body_reader()
        try:
            status, payload, headers = self.fake.handle(method, url.path, query, self.headers, body)
        except ApiError as error:
            status, payload, headers = error.status, models.Error(message=error.message), {}
        except (ValueError, TypeError) as error:  # a request body the SDK's models reject
            status, payload, headers = 400, models.Error(message=f"validation error: {error}"[:300]), {}
        has_body = int(self.headers.get("Content-Length") or 0) or "chunked" in self.headers.get(
            "Transfer-Encoding", ""
        )
        if has_body and not consumed["done"]:
            for _ in self._chunks():  # drain what was not read, so the connection stays usable
                pass
        self._send(status, payload, headers)

    def _send(self, status: int, payload: Any, headers: dict) -> None:
        if isinstance(payload, tuple) and payload[0] in ("file", "s3"):
            kind, where, start, length = payload
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            for chunk in self._content(kind, where, start, length):
                self.wfile.write(chunk)
                with self.fake.lock:
                    self.fake.object_bytes_sent += len(chunk)
            return
        if isinstance(payload, bytes):
            data = payload
        else:
            data = json.dumps(payload.to_dict(), default=_json_default).encode()
            headers = {"Content-Type": "application/json", **headers}
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _content(self, kind: str, where: Any, start: int, length: int) -> Any:
        """An object's bytes [start, start + length) in chunks: from a local blob or the S3 server."""
        if length <= 0:
            return
        if kind == "s3":
            bucket, _, key = where[len("s3://") :].partition("/")
            byte_range = f"bytes={start}-{start + length - 1}"
            body = self.fake.s3().get_object(Bucket=bucket, Key=key, Range=byte_range)["Body"]
            yield from body.iter_chunks(CHUNK)
            return
        with open(where, "rb") as handle:
            handle.seek(start)
            remaining = length
            while remaining:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")


def _handler_for(fake: FakeLakeFS) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"fake": fake})

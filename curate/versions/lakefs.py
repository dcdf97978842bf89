"""The lakeFS backend: dataset versions in a lakeFS repository, through the official SDK (lakefs-sdk).

Written against the lakeFS REST API v1 (``/api/v1``) as lakefs-sdk 1.88 models it (lakeFS's
api/swagger.yml). A run's output is committed on a branch of its own, ``runs-<run-id>``, made from the
target branch's head, and merged into the target only when every file is uploaded and committed: a run
that fails or is killed leaves the target exactly as it was (lakeFS branch names cannot contain '/', so
not ``runs/<id>``). Two runs racing for one target: the second merge conflicts (409) and is refused, its
commit kept on its run branch; nothing is lost.

Uploads and downloads stream (fixed-size buffers, whatever the shard size): the SDK's own upload reads a
whole file into memory, so object bodies go through the SDK's connection pool directly, as the
``application/octet-stream`` body that the uploadObject operation accepts, and reads use HTTP ranges.
Credentials come from LAKEFS_ENDPOINT / LAKEFS_ACCESS_KEY_ID / LAKEFS_SECRET_ACCESS_KEY, lakectl's
LAKECTL_* variables or ~/.lakectl.yaml; the secret never appears in a message.

An output already on an object store (s3://, gs://) is committed without its bytes passing through this
process where lakeFS allows it: lakeFS's zero-copy import (``POST .../branches/{branch}/import``, then
polling its status) makes the run branch point at the objects where the run wrote them. lakeFS imports
only from the blockstore of the repository and never from inside the repository's own storage namespace,
and an imported object must stay where it is, so curate imports only from prefixes the user declared
durable in ``CURATE_LAKEFS_IMPORT_FROM``; any other object-store output is streamed through the upload.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

from curate.core.errors import CurateError
from curate.versions.base import (
    BLOCK,
    MANIFEST,
    STATS,
    ProgressHook,
    SourceFile,
    Version,
    VersionStore,
    check_against_manifest,
    check_name,
    checkout_target,
    default_store_root,
    is_remote,
    list_output,
    manifest_files,
    open_source,
    read_json_file,
    scan_output,
    stats_delta,
    write_stream,
)

SCHEME = "lakefs://"
API_PREFIX = "/api/v1"
LINEAGE_KEY = "curate.lineage"
PAGE = 1000
IMPORT_ENV = "CURATE_LAKEFS_IMPORT_FROM"  # comma-separated s3:// or gs:// prefixes lakeFS may import from
IMPORT_TIMEOUT = 6 * 3600.0
T = TypeVar("T")


def import_prefixes() -> list[str]:
    """The object-store prefixes whose outputs lakeFS may import (each ending in '/')."""
    raw = os.environ.get(IMPORT_ENV, "")
    return [p.strip().rstrip("/") + "/" for p in raw.split(",") if "://" in p.strip()]


@dataclass(frozen=True)
class Credentials:
    endpoint: str  # scheme://host:port, without /api/v1
    access_key_id: str
    secret_access_key: str = field(repr=False)


def _normalise_endpoint(url: str) -> str:
    url = url.strip().rstrip("/")
    return url[: -len(API_PREFIX)] if url.endswith(API_PREFIX) else url


def load_credentials() -> Credentials:
    """LAKEFS_* variables, else lakectl's LAKECTL_* variables, else lakectl's ~/.lakectl.yaml."""
    env = os.environ
    for prefix in (
        ("LAKEFS_ENDPOINT", "LAKEFS_ACCESS_KEY_ID", "LAKEFS_SECRET_ACCESS_KEY"),
        (
            "LAKECTL_SERVER_ENDPOINT_URL",
            "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
            "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
        ),
    ):
        if env.get(prefix[0]):
            if not env.get(prefix[1]) or not env.get(prefix[2]):
                raise CurateError(f"{prefix[0]} is set but {prefix[1]} or {prefix[2]} is not")
            return Credentials(_normalise_endpoint(env[prefix[0]]), env[prefix[1]], env[prefix[2]])
    config = Path(env.get("LAKECTL_CONFIG_FILE") or Path.home() / ".lakectl.yaml").expanduser()
    if config.is_file():
        import yaml

        try:
            data = yaml.safe_load(config.read_text()) or {}
            creds, server = data.get("credentials") or {}, data.get("server") or {}
            return Credentials(
                _normalise_endpoint(str(server["endpoint_url"])),
                str(creds["access_key_id"]),
                str(creds["secret_access_key"]),
            )
        except (yaml.YAMLError, KeyError, TypeError, AttributeError):
            raise CurateError(
                f"{config}: not a lakectl config with server.endpoint_url and credentials.access_key_id /"
                " secret_access_key"
            ) from None
    raise CurateError(
        "no lakeFS server configured: set LAKEFS_ENDPOINT, LAKEFS_ACCESS_KEY_ID and LAKEFS_SECRET_ACCESS_KEY"
        " (or run `lakectl config`)"
    )


def parse_uri(uri: str) -> tuple[str, str | None, str]:
    """``lakefs://REPO[/REF[/PATH]]`` (or ``lakefs://REPO@REF``) -> (repo, ref or None, path)."""
    if not uri.startswith(SCHEME):
        raise CurateError(f"{uri}: not a lakefs:// URI (lakefs://REPO/REF/PATH)")
    rest = uri[len(SCHEME) :]
    head, _, path = rest.partition("/")
    repo, _, at_ref = head.partition("@")
    ref = at_ref or None
    if ref is None and path:
        ref, _, path = path.partition("/")
    if not repo:
        raise CurateError(f"{uri}: no repository in the URI (lakefs://REPO/REF/PATH)")
    return repo, ref or None, path.strip("/")


class _Context:
    """What a request was for, so an error names the repository, the ref and the endpoint."""

    def __init__(self, what: str, missing: str | None = None, conflict: str | None = None):
        self.what, self.missing, self.conflict = what, missing, conflict


class _NoChanges(Exception):
    """lakeFS answered 400 "no changes": a commit with nothing staged (lakeFS before 1.x ignores
    ``allow_empty``), or a merge whose source adds nothing to the destination."""


class LakeFSRepository(VersionStore):
    def __init__(self, repo: str, credentials: Credentials | None = None, retries: int = 2):
        import lakefs_sdk
        import urllib3

        self.repo = repo
        self.name = f"{SCHEME}{repo}"
        self.credentials = credentials or load_credentials()
        config = lakefs_sdk.Configuration(
            host=self.credentials.endpoint + API_PREFIX,
            username=self.credentials.access_key_id,
            password=self.credentials.secret_access_key,
        )
        retry = urllib3.Retry(total=retries, connect=retries, read=0, backoff_factor=0.2)
        config.retries = retry  # type: ignore[assignment]  # lakefs-sdk types it None; urllib3 takes a Retry
        self._client = lakefs_sdk.ApiClient(config)
        self._auth = urllib3.util.make_headers(
            basic_auth=f"{self.credentials.access_key_id}:{self.credentials.secret_access_key}"
        )
        self.repositories = lakefs_sdk.RepositoriesApi(self._client)
        self.branches_api = lakefs_sdk.BranchesApi(self._client)
        self.commits = lakefs_sdk.CommitsApi(self._client)
        self.refs = lakefs_sdk.RefsApi(self._client)
        self.tags_api = lakefs_sdk.TagsApi(self._client)
        self.objects = lakefs_sdk.ObjectsApi(self._client)
        self.imports = lakefs_sdk.ImportApi(self._client)
        self._repository: Any = None
        self.import_timeout = IMPORT_TIMEOUT
        #: How the last commit moved its files: {"imported": n, "uploaded": n, "unchanged": n}.
        self.last_transfer: dict[str, int] = {}

    @property
    def where(self) -> str:
        return f"lakeFS at {self.credentials.endpoint}"

    # --------------------------------------------------------------------------------- errors

    def _call(self, context: _Context, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        from lakefs_sdk.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return function(*args, **kwargs)
        except ApiException as error:
            raise CurateError(self._explain(error.status, error.body, context)) from None
        except HTTPError as error:
            reason = getattr(error, "reason", None) or error
            raise CurateError(
                f"cannot reach {self.where} ({type(reason).__name__}) while {context.what}; is the server up"
                " and LAKEFS_ENDPOINT right?"
            ) from None

    @staticmethod
    def _unless_no_changes(function: Callable[..., T]) -> Callable[..., T]:
        """``function``, raising _NoChanges where lakeFS answers 400 "no changes"."""
        from lakefs_sdk.exceptions import ApiException

        def call(*args: Any, **kwargs: Any) -> T:
            try:
                return function(*args, **kwargs)
            except ApiException as error:
                if error.status == 400 and "no changes" in str(error.body or ""):
                    raise _NoChanges() from None
                raise

        return call

    def _explain(self, status: int, body: Any, context: _Context) -> str:
        try:  # lakeFS's Error body; a merge conflict's body is a MergeResult without a message
            parsed = json.loads(body) if body else {}
            message = str(parsed.get("message") or "") if isinstance(parsed, dict) else str(parsed)[:200]
        except (ValueError, TypeError):
            message = str(body or "")[:200]
        message = message.replace(self.credentials.secret_access_key, "***")
        if status == 401 and "insufficient permissions" in message:  # how lakeFS refuses a known key
            key = self.credentials.access_key_id
            return f"{self.where}: access key {key} may not do this (401: {message}): {context.what}"
        if status == 401:
            return (
                f"{self.where} rejected the credentials of access key {self.credentials.access_key_id} (401)"
                f" while {context.what}; check LAKEFS_ACCESS_KEY_ID / LAKEFS_SECRET_ACCESS_KEY"
            )
        if status == 403:
            key = self.credentials.access_key_id
            return f"{self.where}: access key {key} may not do this (403): {context.what}"
        if status == 404:
            if not self._repository_exists():
                return (
                    f"{self.name}: no such repository at {self.credentials.endpoint} (create it: lakectl repo"
                    f" create {self.name} STORAGE_NAMESPACE)"
                )
            return f"{context.missing or context.what + ': not found'} at {self.where} (404)"
        if status == 409 and context.conflict:
            return f"{context.conflict} ({self.where}, 409: {message or 'conflict'})"
        return f"{self.where}: {context.what} failed ({status}: {message or 'no message'})"

    def _repository_exists(self) -> bool:
        from lakefs_sdk.exceptions import ApiException

        try:
            self._repository = self.repositories.get_repository(self.repo)
            return True
        except ApiException as error:
            if error.status == 404:
                return False
            context = _Context("opening the repository")
            raise CurateError(self._explain(error.status, error.body, context)) from None
        except Exception:
            return True  # unreachable now: report the original error instead

    def repository(self) -> Any:
        if self._repository is None:
            context = _Context(f"opening {self.name}", f"{self.name}: no such repository")
            self._repository = self._call(context, self.repositories.get_repository, self.repo)
        return self._repository

    def default_branch(self) -> str:
        return self.repository().default_branch

    def check_commit_target(self, branch: str, folder: str) -> None:
        """The branch name, the server, the credentials and the repository now; and never a run into the
        folder that a version of ``branch`` was imported from (lakeFS reads those objects where they are)."""
        check_name("branch", branch)
        self.repository()
        root = folder.rstrip("/")
        imported = (
            self.imported_from(branch, root) if self.importable(root) and branch in self.branches() else []
        )
        if imported:
            raise CurateError(
                f"{root}: {self.name}@{branch} was imported from this folder ({len(imported)} file(s), e.g."
                f" {imported[0]}) and lakeFS reads them there; write this run to a new folder (one per run)"
            )

    def _ref_context(self, ref: str, what: str) -> _Context:
        return _Context(f"{what} {self.name}@{ref}", f"{self.name}@{ref}: no such branch, tag or commit")

    # ---------------------------------------------------------------------------- raw objects

    def _url(self, *parts: str, **query: str) -> str:
        path = "/".join(quote(p, safe="") for p in parts)
        params = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
        return f"{self.credentials.endpoint}{API_PREFIX}/{path}" + (f"?{params}" if params else "")

    def _raw(
        self, method: str, url: str, context: _Context, body: Any = None, headers: dict | None = None
    ) -> Any:
        from lakefs_sdk.exceptions import ApiException

        pool = self._client.rest_client.pool_manager

        def send() -> Any:
            response = pool.request(
                method,
                url,
                body=body,
                headers={**self._auth, **(headers or {})},
                preload_content=False,
                retries=False if body is not None else None,
            )
            if not 200 <= response.status <= 299:
                error = ApiException(status=response.status, reason=response.reason)
                error.body = response.read().decode("utf-8", "replace")
                response.release_conn()
                raise error
            return response

        return self._call(context, send)

    def _upload(self, branch: str, item: SourceFile, on_progress: ProgressHook | None) -> str:
        """Stream one file (local, or read from an object store) as the object's body, at most its listed
        size; returns the sha256 of what was sent."""
        progress = (lambda n: on_progress(item.relative, n)) if on_progress else (lambda n: None)
        reader = _HashingReader(open_source(item.location), item.size, progress)
        url = self._url("repositories", self.repo, "branches", branch, "objects", path=item.relative)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(item.size)}
        context = _Context(f"uploading {item.relative} to {self.name}@{branch}")
        with reader:
            response = self._raw("POST", url, context, body=reader, headers=headers)
            response.read()
            response.release_conn()
            if reader.size != item.size or reader.grew():
                raise CurateError(
                    f"{item.location}: changed while being uploaded; nothing was committed, re-run"
                )
        return reader.sha256()

    def open(self, ref: str, path: str) -> BinaryIO:
        context = _Context(f"reading {path} of {self.name}@{ref}", f"{self.name}@{ref}: no file {path}")
        stat = self._call(context, self.objects.stat_object, self.repo, ref, path)
        url = self._url("repositories", self.repo, "refs", ref, "objects", path=path)
        raw = _RangeReader(self, url, int(stat.size_bytes or 0), context)
        return io.BufferedReader(raw, buffer_size=4 * BLOCK)  # type: ignore[return-value]

    # -------------------------------------------------------------------------------- listing

    def _pages(
        self, function: Callable[..., Any], context: _Context, *args: Any, **kwargs: Any
    ) -> Iterator[Any]:
        after = ""
        while True:
            page = self._call(context, function, *args, after=after, amount=PAGE, **kwargs)
            yield from page.results
            if not page.pagination.has_more:
                return
            after = page.pagination.next_offset

    def files(self, ref: str) -> dict[str, dict[str, Any]]:
        listing = self._listing(ref)
        return {path: {"size": o.size_bytes, "checksum": o.checksum} for path, o in listing.items()}

    def _listing(self, ref: str) -> dict[str, Any]:
        """path -> lakeFS's ObjectStats (size, checksum, physical address) of every object of a ref."""
        context = self._ref_context(ref, "listing")
        return {
            o.path: o
            for o in self._pages(self.objects.list_objects, context, self.repo, ref)
            if o.path_type == "object"
        }

    def importable(self, folder: str) -> bool:
        """Whether lakeFS can import ``folder`` in place: on the repository's kind of object store, under a
        prefix declared in CURATE_LAKEFS_IMPORT_FROM, and outside the repository's storage namespace (which
        lakeFS refuses to import from)."""
        if not is_remote(folder):
            return False
        prefix = str(folder).rstrip("/") + "/"
        namespace = str(self.repository().storage_namespace).rstrip("/") + "/"
        same_store = prefix.split("://", 1)[0] == namespace.split("://", 1)[0]
        overlaps = prefix.startswith(namespace) or namespace.startswith(prefix)
        return same_store and not overlaps and any(prefix.startswith(p) for p in import_prefixes())

    def imported_from(self, ref: str, folder: str) -> list[str]:
        """Paths of ``ref`` whose bytes lakeFS reads from under ``folder`` (imported there)."""
        prefix = str(folder).rstrip("/") + "/"
        listing = self._listing(ref)
        return sorted(p for p, o in listing.items() if (o.physical_address or "").startswith(prefix))

    def branches(self) -> dict[str, str]:
        context = _Context(f"listing the branches of {self.name}")
        return {r.id: r.commit_id for r in self._pages(self.branches_api.list_branches, context, self.repo)}

    def tags(self) -> dict[str, str]:
        context = _Context(f"listing the tags of {self.name}")
        return {r.id: r.commit_id for r in self._pages(self.tags_api.list_tags, context, self.repo)}

    def gc_rules(self) -> dict[str, Any] | None:
        """The repository's garbage-collection rules ({"default": days, "branches": {name: days}}), or
        None when none are set (lakeFS then collects nothing). lakeFS's GC job applies them; curate's run
        branches are deleted once merged, so their commits age like any other; a refused run's branch is
        kept until it is deleted."""
        from lakefs_sdk.exceptions import NotFoundException

        self.repository()
        try:
            rules = self.repositories.get_gc_rules(self.repo)
        except NotFoundException:
            return None
        except Exception:  # reported properly by the call below
            rules = self._call(
                _Context(f"reading the GC rules of {self.name}"), self.repositories.get_gc_rules, self.repo
            )
        branches = {rule.branch_id: rule.retention_days for rule in rules.branches or []}
        return {"default": rules.default_retention_days, "branches": branches}

    # -------------------------------------------------------------------------------- commits

    @staticmethod
    def _version(commit: Any) -> Version:
        metadata = dict(commit.metadata or {})
        try:
            lineage = json.loads(metadata.get(LINEAGE_KEY, "{}"))
        except ValueError:
            lineage = {}
        stats = lineage.get("stats", {}) if isinstance(lineage, dict) else {}
        digest = {
            k: stats[k] for k in ("documents_read", "documents_kept", "documents_rejected") if k in stats
        }
        return Version(
            commit.id, tuple(commit.parents), commit.message, float(commit.creation_date), lineage, digest
        )

    def resolve(self, ref: str) -> Version:
        page = self._call(
            self._ref_context(ref, "resolving"), self.refs.log_commits, self.repo, ref, amount=1, limit=True
        )
        if not page.results:
            raise CurateError(f"{self.name}@{ref}: has no commits ({self.where})")
        return self._version(page.results[0])

    def log(self, ref: str, limit: int = 50) -> list[Version]:
        context = self._ref_context(ref, "reading the log of")
        page = self._call(
            context,
            self.refs.log_commits,
            self.repo,
            ref,
            amount=min(limit, PAGE),
            limit=True,
            first_parent=True,
        )
        return [self._version(c) for c in page.results[:limit]]

    def branch(self, new: str, from_ref: str) -> Version:
        from lakefs_sdk import BranchCreation

        context = self._ref_context(from_ref, f"creating branch {new} from")
        context.conflict = f"{self.name}: branch '{new}' exists already"
        self._call(
            context,
            self.branches_api.create_branch,
            self.repo,
            BranchCreation.from_dict({"name": new, "source": from_ref}),
        )
        return self.resolve(new)

    def tag(self, tag: str, ref: str) -> Version:
        from lakefs_sdk import TagCreation

        context = self._ref_context(ref, f"tagging {tag} at")
        context.conflict = f"{self.name}: tag '{tag}' exists already"
        self._call(
            context, self.tags_api.create_tag, self.repo, TagCreation.from_dict({"id": tag, "ref": ref})
        )
        return self.resolve(tag)

    def diff(self, ref_a: str, ref_b: str) -> dict[str, Any]:
        """lakeFS's own two-dot diff of the refs, and the stats of both with deltas."""
        context = _Context(
            f"comparing {self.name}@{ref_a} with {ref_b}", f"{self.name}: no such ref {ref_a} or {ref_b}"
        )
        changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
        for entry in self._pages(self.refs.diff_refs, context, self.repo, ref_a, ref_b, type="two_dot"):
            if entry.path_type == "object" and entry.type in changes:
                changes[entry.type].append(entry.path)
        stats = [self._stats_at(ref) for ref in (ref_a, ref_b)]
        return {
            "from": f"{self.name}@{ref_a}",
            "to": f"{self.name}@{ref_b}",
            **{kind: sorted(paths) for kind, paths in changes.items()},
            "stats": stats_delta(*stats),
        }

    def _stats_at(self, ref: str) -> dict[str, Any]:
        from lakefs_sdk.exceptions import NotFoundException

        try:
            self.objects.stat_object(self.repo, ref, STATS)
        except NotFoundException:
            return {}
        except Exception:  # reported properly by the read below
            pass
        return self.read_json(ref, STATS)

    def merge(self, source: str, destination: str, message: str = "", strategy: str | None = None) -> Version:
        from lakefs_sdk import Merge

        context = _Context(
            f"merging {self.name}@{source} into {destination}",
            f"{self.name}: no such source ref {source} or destination branch {destination}",
            conflict=f"{self.name}: merging {source} into {destination} conflicts; {destination} is unchanged"
            " (use --strategy source-wins or dest-wins, or resolve on a branch)",
        )
        body = Merge.from_dict({"message": message or None, "strategy": strategy, "allow_empty": True})
        merge_into = self._unless_no_changes(self.refs.merge_into_branch)
        try:
            result = self._call(context, merge_into, self.repo, source, destination, merge=body)
        except _NoChanges:  # the destination contains the source already
            return self.resolve(destination)
        return self.resolve(result.reference)

    def commit_output(
        self,
        folder: str | Path,
        branch: str,
        message: str,
        lineage: dict[str, Any] | None = None,
        run_id: str | None = None,
        on_progress: ProgressHook | None = None,
    ) -> Version:
        """Verify, put the files on ``runs-<run-id>`` made from the target's head (imported in place where
        lakeFS can, else uploaded), commit there, merge into the target."""
        self.last_transfer = {"imported": 0, "uploaded": 0, "unchanged": 0}
        if is_remote(folder):
            return self._commit_remote(str(folder).rstrip("/"), branch, message, lineage, run_id, on_progress)
        scanned = scan_output(folder)  # refuses a manifest mismatch before touching the repository
        run_branch = self._start_run_branch(branch, run_id)
        present = self.files(run_branch)
        for item in scanned:
            entry = present.get(item.relative)
            if entry and entry["size"] == item.size and entry["checksum"] in (item.md5, f'"{item.md5}"'):
                if on_progress:  # the same bytes are there already (lakeFS's checksum is the object's MD5)
                    on_progress(item.relative, item.size)
                self.last_transfer["unchanged"] += 1
                continue
            sent = self._upload(run_branch, SourceFile(item.relative, str(item.path), item.size), on_progress)
            if sent != item.sha256:
                raise CurateError(f"{item.path}: changed while being uploaded; nothing was committed, re-run")
            self.last_transfer["uploaded"] += 1
        self._remove_stale(run_branch, present.keys() - {item.relative for item in scanned})
        return self._finish(run_branch, branch, message, lineage)

    def _start_run_branch(self, branch: str, run_id: str | None) -> str:
        from lakefs_sdk import BranchCreation

        self.repository()
        target_head = self._target_head(branch)
        run_branch = f"runs-{run_id or time.strftime('%Y%m%d-%H%M%S') + '-' + uuid.uuid4().hex[:8]}"
        context = _Context(
            f"creating run branch {run_branch}", conflict=f"{self.name}: branch {run_branch} exists"
        )
        self._call(
            context,
            self.branches_api.create_branch,
            self.repo,
            BranchCreation.from_dict({"name": run_branch, "source": target_head}),
        )
        return run_branch

    def _remove_stale(self, run_branch: str, stale_paths: Any) -> None:
        from lakefs_sdk import PathList

        stale = sorted(stale_paths)
        for start in range(0, len(stale), PAGE):
            context = _Context(f"removing files of the previous version on {run_branch}")
            errors = self._call(
                context,
                self.objects.delete_objects,
                self.repo,
                run_branch,
                PathList.from_dict({"paths": stale[start : start + PAGE]}),
            )
            if errors.errors:
                raise CurateError(f"{self.where}: could not remove {errors.errors[0].path} on {run_branch}")

    def _finish(self, run_branch: str, branch: str, message: str, lineage: dict[str, Any] | None) -> Version:
        """Commit the run branch with the lineage, merge it into the target, drop the run branch."""
        from lakefs_sdk import CommitCreation, Merge

        metadata = lineage_metadata(lineage or {}, run_branch)
        context = _Context(f"committing {run_branch} of {self.name}")
        head = self._call(context, self.branches_api.get_branch, self.repo, run_branch).commit_id
        creation = CommitCreation.from_dict({"message": message, "metadata": metadata, "allow_empty": True})
        with contextlib.suppress(_NoChanges):  # nothing staged: an import committed, or nothing changed
            head = self._call(
                context, self._unless_no_changes(self.commits.commit), self.repo, run_branch, creation
            ).id
        context = _Context(
            f"merging {run_branch} into {branch}",
            conflict=f"{self.name}@{branch} moved while the run was committed; {branch} is unchanged and the"
            f" run's commit {head[:12]} stays on branch {run_branch} (rerun, or `curate versions merge"
            f" {self.name}@{run_branch} {branch} --strategy source-wins`)",
        )
        body = Merge.from_dict({"message": message, "metadata": metadata, "allow_empty": True})
        merge_into = self._unless_no_changes(self.refs.merge_into_branch)
        try:
            result = self._call(context, merge_into, self.repo, run_branch, branch, merge=body)
        except _NoChanges:  # the output is the version the run branch was made from (lakeFS 0.113 makes
            self._drop_run_branch(run_branch)  # no empty commit): that version is the run's
            return self.resolve(head)
        self._call(_Context(f"deleting {run_branch}"), self.branches_api.delete_branch, self.repo, run_branch)
        return self.resolve(result.reference)

    def _drop_run_branch(self, run_branch: str) -> None:
        with contextlib.suppress(Exception):  # best effort: the target branch is untouched either way
            self.branches_api.delete_branch(self.repo, run_branch)

    # ------------------------------------------------------------------ outputs on object stores

    def _commit_remote(
        self,
        folder: str,
        branch: str,
        message: str,
        lineage: dict[str, Any] | None,
        run_id: str | None,
        on_progress: ProgressHook | None,
    ) -> Version:
        """An output on s3:// or gs://: imported in place where lakeFS can, else streamed through the upload.
        Either way the target branch moves only after the run branch holds exactly the output."""
        listing = list_output(folder)
        by_path = {item.relative: item for item in listing}
        manifest_bytes, manifest = b"", None
        if MANIFEST in by_path:
            with open_source(by_path[MANIFEST].location) as handle:
                manifest_bytes = handle.read()
            try:
                manifest = json.loads(manifest_bytes)
            except ValueError as error:
                raise CurateError(f"{folder}/{MANIFEST}: not valid JSON ({error})") from None
        for relative, entry in sorted(manifest_files(manifest).items()):  # before touching the repository
            item = by_path.get(relative)
            if item is None:
                raise CurateError(f"{folder}/{relative}: listed in {MANIFEST} but missing; not committed")
            if entry["bytes"] is not None and item.size != entry["bytes"]:
                raise CurateError(
                    f"{folder}/{relative}: {item.size} bytes, {MANIFEST} says {entry['bytes']} (changed after"
                    " the run); refusing to commit"
                )
        importing = self.importable(folder)
        run_branch = self._start_run_branch(branch, run_id)
        try:
            if importing:
                self._import(run_branch, branch, folder, listing, manifest_bytes, message, on_progress)
            else:
                self._upload_all(run_branch, folder, listing, manifest_bytes, manifest, on_progress)
        except BaseException:
            self._drop_run_branch(run_branch)
            raise
        return self._finish(run_branch, branch, message, lineage)

    def _upload_all(
        self,
        run_branch: str,
        folder: str,
        listing: list[SourceFile],
        manifest_bytes: bytes,
        manifest: dict[str, Any] | None,
        on_progress: ProgressHook | None,
    ) -> None:
        present = self.files(run_branch)
        digests = {item.relative: self._upload(run_branch, item, on_progress) for item in listing}
        self.last_transfer["uploaded"] = len(listing)
        if manifest is not None and digests.get(MANIFEST) != hashlib.sha256(manifest_bytes).hexdigest():
            raise CurateError(f"{folder}/{MANIFEST}: changed while being committed; not committed, re-run")
        check_against_manifest(folder, digests, manifest)
        self._remove_stale(run_branch, present.keys() - digests.keys())

    def _import(
        self,
        run_branch: str,
        branch: str,
        folder: str,
        listing: list[SourceFile],
        manifest_bytes: bytes,
        message: str,
        on_progress: ProgressHook | None,
    ) -> None:
        """lakeFS's zero-copy import of the whole folder onto the run branch (it replaces the branch's
        content), then a check that the run branch points at exactly the objects listed here."""
        from lakefs_sdk import ImportCreation

        for item in listing:
            if on_progress:
                on_progress(item.relative, 0)
        body = ImportCreation.from_dict(
            {
                "paths": [{"type": "common_prefix", "path": folder + "/", "destination": ""}],
                # never without metadata: lakeFS 0.113 panics on an import commit whose metadata is nil
                "commit": {
                    "message": f"{message} (imported from {folder})",
                    "metadata": {"curate.imported_from": folder},
                },
            }
        )
        context = _Context(f"importing {folder} into {self.name}@{run_branch}")
        started = self._call(context, self.imports.import_start, self.repo, run_branch, body)
        try:
            status = self._await_import(run_branch, started.id, on_progress)
        except BaseException:
            with contextlib.suppress(Exception):
                self.imports.import_cancel(self.repo, run_branch, started.id)
            raise
        if status.error is not None:
            raise CurateError(
                f"{self.where}: importing {folder} into {self.name} failed ({status.error.message}); {branch}"
                " is unchanged"
            )
        imported = self._listing(run_branch)
        problems = []
        for item in listing:
            stats = imported.get(item.relative)
            if stats is None or stats.size_bytes != item.size or stats.physical_address != item.location:
                problems.append(item.relative)
        manifest = imported.get(MANIFEST)
        md5 = hashlib.md5(manifest_bytes, usedforsecurity=False).hexdigest()
        if manifest is not None and "-" not in manifest.checksum and manifest.checksum.strip('"') != md5:
            problems.append(MANIFEST)
        if problems:
            raise CurateError(
                f"{folder}/{problems[0]}: changed while lakeFS imported the output ({len(problems)} file(s));"
                f" {branch} is unchanged, re-run"
            )
        listed = {item.relative for item in listing}
        self._remove_stale(run_branch, imported.keys() - listed)  # run.log, hidden work files
        self.last_transfer["imported"] = len(listing)

    def _await_import(self, run_branch: str, import_id: str, on_progress: ProgressHook | None) -> Any:
        context = _Context(f"reading the status of import {import_id} on {self.name}@{run_branch}")
        deadline, delay = time.monotonic() + self.import_timeout, 0.05
        while True:
            status = self._call(context, self.imports.import_status, self.repo, run_branch, import_id)
            if on_progress:
                on_progress(f"import {import_id}", status.ingested_objects or 0)
            if status.completed or status.error is not None:
                return status
            if time.monotonic() > deadline:
                raise CurateError(
                    f"{self.where}: import {import_id} into {self.name}@{run_branch} did not finish within"
                    f" {self.import_timeout:.0f} s; it was cancelled"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _target_head(self, branch: str) -> str:
        """The target branch's head commit; a missing target branch is made from the default branch."""
        from lakefs_sdk import BranchCreation
        from lakefs_sdk.exceptions import NotFoundException

        try:
            return self.branches_api.get_branch(self.repo, branch).commit_id
        except NotFoundException:
            default = self.repository().default_branch
            context = self._ref_context(default, f"creating branch {branch} from")
            self._call(
                context,
                self.branches_api.create_branch,
                self.repo,
                BranchCreation.from_dict({"name": branch, "source": default}),
            )
        except Exception:
            pass
        return self._call(
            self._ref_context(branch, "reading"), self.branches_api.get_branch, self.repo, branch
        ).commit_id

    def checkout(self, ref: str, dest: str | Path, force: bool = False) -> Path:
        """Stream every file of the version into ``dest`` and check the shards against the manifest."""
        commit = self.resolve(ref).id  # one commit throughout, even if the branch moves meanwhile
        files = self.files(commit)
        with checkout_target(dest, force, f"{self.name}@{commit}", [default_store_root()]) as staging:
            self._download(ref, commit, files, staging)
        return Path(dest)

    def _download(self, ref: str, commit: str, files: dict[str, Any], dest: Path) -> None:
        digests = {}
        for relative in sorted(files):
            url = self._url("repositories", self.repo, "refs", commit, "objects", path=relative)
            context = _Context(f"downloading {relative} of {self.name}@{ref}")
            response = self._raw("GET", url, context)
            try:
                _, digests[relative] = write_stream(
                    response.stream(BLOCK), dest / relative, None, f"{self.name}@{ref}/{relative}"
                )
            finally:
                response.release_conn()
        manifest = read_json_file(dest / MANIFEST) if MANIFEST in files else None
        check_against_manifest(f"{self.name}@{ref}", digests, manifest)


def lineage_metadata(lineage: dict[str, Any], run_branch: str) -> dict[str, str]:
    """lakeFS commit metadata is string to string: the whole lineage as JSON, plus a few flat keys that
    lakeFS's UI and ``lakectl log`` show as they are."""
    code = lineage.get("code", {})
    stats = lineage.get("stats", {})
    flat = {
        LINEAGE_KEY: json.dumps(lineage, sort_keys=True),
        "curate.run_branch": run_branch,
        "curate.version": code.get("curate"),
        "curate.git_commit": code.get("git_commit"),
        "curate.runner": (lineage.get("runner") or {}).get("name"),
        "curate.documents_kept": stats.get("documents_kept"),
    }
    return {k: str(v) for k, v in flat.items() if v is not None}


class _HashingReader(io.RawIOBase):
    """A file read once for the upload body, hashed as it goes (what was sent is what was checked), and
    never past ``limit`` bytes (the Content-Length announced)."""

    def __init__(self, handle: BinaryIO, limit: int, progress: Callable[[int], Any]):
        self._handle = handle
        self._limit = limit
        self._digest = hashlib.sha256()
        self._progress = progress
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        room = self._limit - self.size
        if room <= 0:
            return b""
        chunk = self._handle.read(min(room, BLOCK if n is None or n < 0 else min(n, BLOCK)))
        self._digest.update(chunk)
        self.size += len(chunk)
        if chunk:
            self._progress(self.size)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def sha256(self) -> str:
        return self._digest.hexdigest()

    def grew(self) -> bool:
        """Whether the file holds more than its listed size (it changed since it was listed)."""
        return bool(self._handle.read(1))

    def close(self) -> None:
        self._handle.close()
        super().close()


class _RangeReader(io.RawIOBase):
    """A seekable reader of one object that fetches byte ranges on demand (Parquet reads only the row
    groups it needs, so training from lakeFS needs no full download)."""

    def __init__(self, repository: LakeFSRepository, url: str, size: int, context: _Context):
        self._repository, self._url, self._size, self._context = repository, url, size, context
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size or len(buffer) == 0:
            return 0
        end = min(self._size, self._position + len(buffer)) - 1
        headers = {"Range": f"bytes={self._position}-{end}"}
        response = self._repository._raw("GET", self._url, self._context, headers=headers)
        if response.status != 206 and not (self._position == 0 and end == self._size - 1):
            response.release_conn()
            raise CurateError(f"{self._repository.where}: ignored a range request ({response.status})")
        try:
            view, filled = memoryview(buffer), 0
            for chunk in response.stream(BLOCK):
                view[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
        finally:
            response.release_conn()
        self._position += filled
        return filled

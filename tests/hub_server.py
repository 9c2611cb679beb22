"""An offline Hugging Face Hub for tests: the subset of the Hub HTTP API that `huggingface_hub` 2.4 and
diffusers 0.42 use to create repos, upload (regular + LFS basic transfer), commit, list, download and curate
collections. Its routes follow what huggingface_hub sends.

Storage is content-addressed: git blobs by sha1 (`blob <size>\\0<bytes>`), LFS objects by sha256. A commit
is an immutable file table `{path: FileEntry}` keyed by a 40-hex sha; branches, tags and PR refs point at
commits, so a commit is atomic by construction (the ref moves only after the whole table is built).

Two origins: the API on one port and LFS object storage (upload PUT + download GET) on another, like the Hub
and its CDN; `HEAD .../resolve/...` on an LFS file answers 302 to that other origin.

Test hooks: `HubServer.fail(method, path_regex, status, times)` injects faults, `gate(repo_id, repo_type)` makes
a repo gated (its info and listing answer, its files are refused with `GatedRepo`), `requests` logs every call,
`unmatched` lists requests that matched no route (the pytest fixture fails the test on any), `errors` the
tracebacks of handler crashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlencode

import uvicorn
import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

USER = "mnist-tester"
ORGS = ("mnist-genlab",)
WRITE_TOKEN = "hf_offlineWRITEtoken0123456789abcdef"
READ_TOKEN = "hf_offlineREADtoken0123456789abcdef"
LFS_THRESHOLD = 10 * 1024 * 1024
DROP = 0  # fault "status": close the connection instead of answering
# Subset of the Hub's default .gitattributes patterns (suffixes always stored in LFS).
LFS_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".pkl",
    ".pickle",
    ".h5",
    ".onnx",
    ".msgpack",
    ".npy",
    ".npz",
    ".zip",
    ".gz",
    ".tar",
    ".parquet",
    ".arrow",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
)
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
VALID_LICENSES = {
    "mit",
    "apache-2.0",
    "bsd-3-clause",
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc0-1.0",
    "openrail",
    "other",
    "gpl-3.0",
    "unknown",
}
VALID_PIPELINE_TAGS = {
    "unconditional-image-generation",
    "text-to-image",
    "image-classification",
    "image-to-image",
    "feature-extraction",
    "other",
}
DEFAULT_GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class FileEntry:
    path: str
    oid: str  # git blob sha1 (of the pointer file for LFS entries)
    size: int  # size of the real content
    lfs_sha256: str | None = None

    def tree_json(self, *, with_blob_fields: bool = True) -> dict:
        out = {"type": "file", "oid": self.oid, "size": self.size, "path": self.path}
        if self.lfs_sha256:
            out["lfs"] = {
                "oid": self.lfs_sha256,
                "size": self.size,
                "pointerSize": len(lfs_pointer(self.lfs_sha256, self.size)),
            }
        return out


@dataclass(frozen=True)
class Commit:
    sha: str
    parent: str | None
    files: dict  # path -> FileEntry (never mutated after creation)
    title: str
    message: str
    date: str
    author: str


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created_at: str
    commits: dict = field(default_factory=dict)  # sha -> Commit
    branches: dict = field(default_factory=dict)  # name -> sha
    tags: dict = field(default_factory=dict)
    prs: dict = field(default_factory=dict)  # number -> sha (refs/pr/N)
    sdk: str | None = None
    gated: bool = False  # files refused to every token (no access request is ever granted offline)

    def resolve(self, rev: str) -> str | None:
        """Branch, tag, refs/pr/N, refs/heads|tags/X or a full 40-hex commit sha → commit sha."""
        if rev in self.branches:
            return self.branches[rev]
        if rev in self.tags:
            return self.tags[rev]
        if m := re.fullmatch(r"refs/pr/(\d+)", rev):
            return self.prs.get(int(m.group(1)))
        if rev.startswith("refs/heads/"):
            return self.branches.get(rev[len("refs/heads/") :])
        if rev.startswith("refs/tags/"):
            return self.tags.get(rev[len("refs/tags/") :])
        if re.fullmatch(r"[0-9a-f]{40}", rev) and rev in self.commits:
            return rev
        return None


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int
    remaining: int | None  # None: forever


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def response(self) -> Response:
        headers = dict(self.headers)
        if self.code:
            headers["X-Error-Code"] = self.code
        headers["X-Error-Message"] = self.message
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


def bind_socket() -> socket.socket:
    """A listening socket on 127.0.0.1 with a port chosen by the OS (kept open, so no one else takes it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class HubServer:
    """State + two Starlette apps (API, LFS storage). `start()` serves them with uvicorn in daemon threads."""

    def __init__(self, api_sock: socket.socket | None = None, lfs_sock: socket.socket | None = None):
        self.api_sock = api_sock or bind_socket()
        self.lfs_sock = lfs_sock or bind_socket()
        self.endpoint = f"http://127.0.0.1:{self.api_sock.getsockname()[1]}"
        self.lfs_endpoint = f"http://127.0.0.1:{self.lfs_sock.getsockname()[1]}"
        self.tokens = {WRITE_TOKEN: "write", READ_TOKEN: "read"}
        self.page_size = 50
        self.lock = threading.RLock()
        self._servers: list[uvicorn.Server] = []
        self._threads: list[threading.Thread] = []
        self.reset()
        self.api_app = self._Recorder(self, Router(routes=self._api_routes(), default=self._unmatched))
        self.lfs_app = self._Recorder(self, Router(routes=self._lfs_routes(), default=self._unmatched), "lfs")

    # -- test hooks --------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.blobs: dict[str, bytes] = {GIT_EMPTY: b""}
            self.lfs: dict[str, bytes] = {}
            self.repos: dict[tuple[str, str], Repo] = {}
            self.collections: dict[str, dict] = {}
            self.faults: list[Fault] = []
            self.requests: list[tuple[str, str]] = []
            self.unmatched: list[str] = []
            self.errors: list[str] = []
            self._counter = 0

    def fail(self, method: str, path_regex: str, status: int = 500, times: int | None = 1) -> None:
        """Answer the next `times` requests (None: all) whose path matches `path_regex` with `status`
        (`DROP`: a connection closed mid-response, like a network failure)."""
        with self.lock:
            self.faults.append(Fault(method.upper(), re.compile(path_regex), status, times))

    def gate(self, repo_id: str, repo_type: str = "model") -> None:
        """Make an existing repo gated, as an owner's "ask for access" setting does on the Hub."""
        with self.lock:
            self.repos[(repo_type, repo_id)].gated = True

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def commit_count(self, repo_id: str, repo_type: str = "model", branch: str = "main") -> int:
        repo = self.repos[(repo_type, repo_id)]
        sha, n = repo.branches.get(branch), 0
        while sha:
            n, sha = n + 1, repo.commits[sha].parent
        return n

    def head_files(self, repo_id: str, repo_type: str = "model", rev: str = "main") -> dict[str, bytes]:
        """{path: content} of a revision (LFS content resolved) — for assertions."""
        repo = self.repos[(repo_type, repo_id)]
        commit = repo.commits[repo.resolve(rev)]
        return {p: self._content(e) for p, e in commit.files.items()}

    def stored_bytes(self) -> list[bytes]:
        """Everything the server holds: blobs, LFS objects, commit messages (to grep for leaked secrets)."""
        out = list(self.blobs.values()) + list(self.lfs.values())
        for repo in self.repos.values():
            out += [(c.title + "\n" + c.message).encode() for c in repo.commits.values()]
        out += [json.dumps(c).encode() for c in self.collections.values()]
        return out

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> HubServer:
        for app, sock in ((self.api_app, self.api_sock), (self.lfs_app, self.lfs_sock)):
            config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        deadline = time.time() + 10
        while not all(s.started for s in self._servers):
            if time.time() > deadline:
                raise RuntimeError("offline Hub did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=5)

    # -- plumbing ----------------------------------------------------------------------------------
    class _Recorder:
        """ASGI wrapper: logs each request, applies injected faults, turns crashes into logged 500s."""

        def __init__(self, hub: HubServer, app, origin: str = "api"):
            self.hub, self.app, self.origin = hub, app, origin

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            method, path = scope["method"], scope["path"]
            hub = self.hub
            with hub.lock:
                hub.requests.append((method, f"{self.origin}:{path}"))
                fault = next(
                    (
                        f
                        for f in hub.faults
                        if f.method in (method, "*")
                        and f.pattern.search(path)
                        and (f.remaining is None or f.remaining > 0)
                    ),
                    None,
                )
                if fault is not None and fault.remaining is not None:
                    fault.remaining -= 1
            if fault is not None:
                # Drain the body so the client sees a clean response rather than a reset connection.
                while (await receive()).get("more_body"):
                    pass
                if fault.status == DROP:
                    # Promise a body and close without it: the client sees a broken connection.
                    await send(
                        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
                    )
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return None
                return await JSONResponse({"error": f"injected fault {fault.status}"}, status_code=fault.status)(
                    scope, receive, send
                )
            try:
                await self.app(scope, receive, send)
            except Exception:
                hub.errors.append(f"{method} {path}\n{traceback.format_exc()}")
                await JSONResponse({"error": "internal error"}, status_code=500)(scope, receive, send)

    async def _unmatched(self, scope, receive, send):
        query = scope.get("query_string", b"").decode()
        self.unmatched.append(f"{scope['method']} {scope['path']}?{query}")
        response = JSONResponse({"error": "no such route in the offline Hub"}, status_code=404)
        await response(scope, receive, send)

    def _wrap(self, handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HubError as err:
                return err.response()

        return endpoint

    def _api_routes(self) -> list[Route]:
        w = self._wrap
        repo, coll = "/api/{t:str}/{ns:str}/{name:str}", "/api/collections/{ns:str}/{slug:str}"
        routes = [
            Route("/api/whoami-v2", w(self.whoami), methods=["GET"]),
            Route("/api/agent-harnesses", w(self.agent_harnesses), methods=["GET"]),
            Route("/api/validate-yaml", w(self.validate_yaml), methods=["POST"]),
            Route("/api/repos/create", w(self.create_repo), methods=["POST"]),
            Route("/api/repos/delete", w(self.delete_repo), methods=["DELETE"]),
            Route("/api/collections", w(self.create_collection), methods=["POST"]),
            Route("/api/collections", w(self.list_collections), methods=["GET"]),
            Route(coll, w(self.get_collection), methods=["GET"]),
            Route(coll, w(self.delete_collection), methods=["DELETE"]),
            Route(coll + "/items", w(self.add_collection_item), methods=["POST"]),
            Route(coll + "/items/{item:str}", w(self.delete_collection_item), methods=["DELETE"]),
            Route(repo, w(self.repo_info), methods=["GET"]),
            Route(repo + "/revision/{rest:path}", w(self.repo_info), methods=["GET"]),
            Route(repo + "/tree/{rest:path}", w(self.tree), methods=["GET"]),
            Route(repo + "/paths-info/{rest:path}", w(self.paths_info), methods=["POST"]),
            Route(repo + "/refs", w(self.refs), methods=["GET"]),
            Route(repo + "/commits/{rest:path}", w(self.commits), methods=["GET"]),
            Route(repo + "/preupload/{rest:path}", w(self.preupload), methods=["POST"]),
            Route(repo + "/commit/{rest:path}", w(self.commit), methods=["POST"]),
            Route(repo + "/branch/{rest:path}", w(self.create_branch), methods=["POST"]),
            Route(repo + "/branch/{rest:path}", w(self.delete_branch), methods=["DELETE"]),
            Route(repo + "/tag/{rest:path}", w(self.create_tag), methods=["POST"]),
            Route(repo + "/tag/{rest:path}", w(self.delete_tag), methods=["DELETE"]),
            Route("/lfs/verify", w(self.lfs_verify), methods=["POST"]),
        ]
        for prefix in ("/datasets", "/spaces", ""):
            routes += [
                Route(
                    prefix + "/{ns:str}/{name:str}/resolve/{rest:path}",
                    w(self.resolve),
                    methods=["GET", "HEAD"],
                ),
                Route(
                    prefix + "/{ns:str}/{name:str}.git/info/lfs/objects/batch",
                    w(self.lfs_batch),
                    methods=["POST"],
                ),
            ]
        return routes

    def _lfs_routes(self) -> list[Route]:
        w = self._wrap
        return [
            Route("/objects/{oid:str}", w(self.lfs_put), methods=["PUT"]),
            Route("/objects/{oid:str}", w(self.lfs_get), methods=["GET", "HEAD"]),
        ]

    # -- helpers -----------------------------------------------------------------------------------
    def _auth(self, request: Request, *, write: bool = False) -> str | None:
        """The token's role ('read'/'write') or None when anonymous. 401 on an unknown token, 403 on a read
        token for a write operation."""
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        role = None
        if token:
            role = self.tokens.get(token)
            if role is None:
                raise HubError(401, "Invalid credentials in Authorization header", "InvalidCredentials")
        if write and role is None:
            raise HubError(401, "You must be authenticated to do this", "Unauthorized")
        if write and role != "write":
            raise HubError(403, "You don't have the rights to write with this token (read-only)", "Forbidden")
        return role

    def _repo_type(self, request: Request) -> str:
        t = request.path_params.get("t", "models")
        if t not in REPO_TYPES:
            raise HubError(404, f"Unknown repo type {t}", "RepoNotFound")
        return REPO_TYPES[t]

    def _get_repo(self, request: Request, repo_type: str | None = None) -> Repo:
        repo_type = repo_type or self._repo_type(request)
        repo_id = f"{request.path_params['ns']}/{request.path_params['name']}"
        repo = self.repos.get((repo_type, repo_id))
        role = self._auth(request)
        if repo is None or (repo.private and role is None):
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    @staticmethod
    def _tail_segments(request: Request, marker: str) -> list[str]:
        """Raw (still percent-encoded) path segments after `/<marker>/`, so that a quoted revision such as
        `refs%2Fpr%2F1` stays one segment."""
        raw = request.scope.get("raw_path", b"").decode() or quote(request.url.path)
        idx = raw.find(f"/{marker}/")
        return [s for s in raw[idx + len(marker) + 2 :].split("/")] if idx >= 0 else []

    def _rev_and_path(self, repo: Repo, segments: list[str]) -> tuple[str, str, str]:
        """Split raw segments into (revision, commit sha, path); revisions may contain '/' when not quoted."""
        for i in range(1, len(segments) + 1):
            rev = "/".join(unquote(s) for s in segments[:i])
            sha = repo.resolve(rev)
            if sha is not None:
                return rev, sha, unquote("/".join(segments[i:]))
        rev = unquote(segments[0]) if segments else ""
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _content(self, entry: FileEntry) -> bytes:
        return self.lfs[entry.lfs_sha256] if entry.lfs_sha256 else self.blobs[entry.oid]

    def _new_sha(self, *parts: str) -> str:
        self._counter += 1
        return hashlib.sha1("\0".join((*parts, str(self._counter), str(time.time_ns()))).encode()).hexdigest()

    def _make_commit(self, repo: Repo, parent: str | None, files: dict, title: str, message: str) -> Commit:
        tree = json.dumps(sorted((p, e.oid) for p, e in files.items()))
        sha = self._new_sha(repo.id, parent or "", tree, title)
        commit = Commit(sha, parent, dict(files), title, message, now_iso(), USER)
        repo.commits[commit.sha] = commit
        return commit

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.endpoint}/{URL_PREFIX[repo.type]}{repo.id}"

    # -- identity, misc ----------------------------------------------------------------------------
    async def whoami(self, request: Request) -> Response:
        role = self._auth(request)
        if role is None:
            raise HubError(401, "Invalid credentials in Authorization header", "Unauthorized")
        return JSONResponse(
            {
                "type": "user",
                "id": "0" * 24,
                "name": USER,
                "fullname": "Offline Tester",
                "email": None,
                "orgs": [{"type": "org", "name": o, "roleInOrg": "admin"} for o in ORGS],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": f"{role}-token", "role": role},
                },
            }
        )

    async def agent_harnesses(self, request: Request) -> Response:
        return JSONResponse({"harnesses": []})

    async def validate_yaml(self, request: Request) -> Response:
        body = await request.json()
        content, repo_type = body.get("content", ""), body.get("repoType", "model")
        errors, warnings = validate_card_yaml(content, repo_type)
        if errors:
            if "text/plain" in request.headers.get("accept", ""):
                return Response("\n".join(e["message"] for e in errors), status_code=400, media_type="text/plain")
            return JSONResponse({"errors": errors, "warnings": warnings}, status_code=400)
        return JSONResponse({"errors": [], "warnings": warnings})

    # -- repos -------------------------------------------------------------------------------------
    async def create_repo(self, request: Request) -> Response:
        self._auth(request, write=True)
        body = await request.json()
        name, org = body.get("name"), body.get("organization") or USER
        repo_type = body.get("type") or "model"
        valid_name = bool(name) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name)
        if not valid_name or repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo name or type: {name!r} {repo_type!r}", "BadRequest")
        if org != USER and org not in ORGS:
            raise HubError(403, f"You don't have the rights to create a repo under {org}", "Forbidden")
        if repo_type == "space" and not body.get("sdk"):
            raise HubError(400, "Spaces need an sdk", "BadRequest")
        repo_id = f"{org}/{name}"
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                repo = self.repos[(repo_type, repo_id)]
                return JSONResponse(
                    {"error": "You already created this repo", "url": self._repo_url(repo)}, status_code=409
                )
            private = bool(body.get("private")) or body.get("visibility") == "private"
            repo = Repo(repo_type, repo_id, private, now_iso(), sdk=body.get("sdk"))
            # Like the Hub: a new repo starts with one commit holding .gitattributes.
            self.blobs[git_sha1(DEFAULT_GITATTRIBUTES)] = DEFAULT_GITATTRIBUTES
            entry = FileEntry(".gitattributes", git_sha1(DEFAULT_GITATTRIBUTES), len(DEFAULT_GITATTRIBUTES))
            commit = self._make_commit(repo, None, {".gitattributes": entry}, "initial commit", "")
            repo.branches["main"] = commit.sha
            self.repos[(repo_type, repo_id)] = repo
        return JSONResponse({"url": self._repo_url(repo), "name": repo_id, "id": "0" * 24})

    async def delete_repo(self, request: Request) -> Response:
        self._auth(request, write=True)
        body = await request.json()
        repo_id = f"{body.get('organization') or USER}/{body.get('name')}"
        with self.lock:
            if self.repos.pop((body.get("type") or "model", repo_id), None) is None:
                raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return Response(status_code=200)

    async def repo_info(self, request: Request) -> Response:
        repo = self._get_repo(request)
        segments = self._tail_segments(request, "revision")
        with self.lock:
            if segments:
                _, sha, _ = self._rev_and_path(repo, segments)
            else:
                sha = repo.branches.get("main")
            commit = repo.commits[sha]
            blobs = request.query_params.get("blobs") in ("true", "True", "1")
            siblings = []
            for path, entry in sorted(commit.files.items()):
                sib = {"rfilename": path}
                if blobs:
                    sib.update(size=entry.size, blobId=entry.oid)
                    if entry.lfs_sha256:
                        sib["lfs"] = {
                            "size": entry.size,
                            "sha256": entry.lfs_sha256,
                            "pointerSize": len(lfs_pointer(entry.lfs_sha256, entry.size)),
                        }
                siblings.append(sib)
            card = {}
            if "README.md" in commit.files:
                readme = self._content(commit.files["README.md"]).decode("utf-8", "replace")
                card = parse_front_matter(readme)[0]
        info = {
            "_id": "0" * 24,
            "id": repo.id,
            "modelId": repo.id,
            "author": repo.id.split("/")[0],
            "sha": sha,
            "private": repo.private,
            "disabled": False,
            "gated": "manual" if repo.gated else False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags") or []),
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "siblings": siblings,
            "cardData": card or None,
        }
        if repo.type == "model":
            info.update(library_name=card.get("library_name"), pipeline_tag=card.get("pipeline_tag"))
        if repo.type == "space":
            info.update(sdk=repo.sdk, runtime={"stage": "RUNNING"})
        return JSONResponse(info)

    def _listing(self, commit: Commit, base: str, recursive: bool) -> list[dict]:
        base = base.strip("/")
        prefix = base + "/" if base else ""
        if base and base not in commit.files and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"{base} does not exist on this revision", "EntryNotFound")
        if base in commit.files:
            return [commit.files[base].tree_json()]
        dirs, files = set(), []
        for path, entry in commit.files.items():
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :].split("/")
            for depth in range(1, len(rel)):
                if recursive or depth == 1:
                    dirs.add(prefix + "/".join(rel[:depth]))
            if recursive or len(rel) == 1:
                files.append(entry.tree_json())
        folders = [
            {
                "type": "directory",
                "oid": hashlib.sha1(d.encode() + commit.sha.encode()).hexdigest(),
                "path": d,
            }
            for d in dirs
        ]
        return sorted(folders + files, key=lambda e: e["path"])

    async def tree(self, request: Request) -> Response:
        repo = self._get_repo(request)
        with self.lock:
            _, sha, path = self._rev_and_path(repo, self._tail_segments(request, "tree"))
            entries = self._listing(
                repo.commits[sha], path, request.query_params.get("recursive") in ("true", "True", "1")
            )
        return self._page(request, entries)

    def _page(self, request: Request, entries: list) -> Response:
        """Cursor pagination with a GitHub-style `Link: <…>; rel="next"` header."""
        start = int(request.query_params.get("cursor", "0") or 0)
        limit = self.page_size
        page = entries[start : start + limit]
        headers = {}
        if start + limit < len(entries):
            params = dict(request.query_params)
            params["cursor"] = str(start + limit)
            headers["Link"] = f'<{self.endpoint}{request.url.path}?{urlencode(params)}>; rel="next"'
        return JSONResponse(page, headers=headers)

    async def paths_info(self, request: Request) -> Response:
        repo = self._get_repo(request)
        form = await request.form()
        paths = form.getlist("paths")
        with self.lock:
            _, sha, _ = self._rev_and_path(repo, self._tail_segments(request, "paths-info"))
            commit = repo.commits[sha]
            out = []
            for p in paths:
                p = p.strip("/")
                if p in commit.files:
                    out.append(commit.files[p].tree_json())
                elif any(f.startswith(p + "/") for f in commit.files):
                    out.append({"type": "directory", "oid": hashlib.sha1(p.encode()).hexdigest(), "path": p})
        return JSONResponse(out)

    async def refs(self, request: Request) -> Response:
        repo = self._get_repo(request)
        with self.lock:
            out = {
                "branches": [
                    {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s} for n, s in repo.branches.items()
                ],
                "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": s} for n, s in repo.tags.items()],
                "converts": [],
            }
            if request.query_params.get("include_prs"):
                out["pullRequests"] = [
                    {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": s} for n, s in repo.prs.items()
                ]
        return JSONResponse(out)

    async def commits(self, request: Request) -> Response:
        repo = self._get_repo(request)
        with self.lock:
            _, sha, _ = self._rev_and_path(repo, self._tail_segments(request, "commits"))
            history = []
            while sha:
                c = repo.commits[sha]
                history.append(
                    {
                        "id": c.sha,
                        "title": c.title,
                        "message": c.message,
                        "date": c.date,
                        "authors": [{"user": c.author}],
                    }
                )
                sha = c.parent
        return self._page(request, history)

    async def create_branch(self, request: Request) -> Response:
        self._auth(request, write=True)
        repo = self._get_repo(request)
        branch = unquote("/".join(self._tail_segments(request, "branch")))
        body = await request.body()
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        with self.lock:
            if branch in repo.branches:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}", "Conflict")
            sha = repo.resolve(start)
            if sha is None:
                raise HubError(404, f"Invalid rev id: {start}", "RevisionNotFound")
            repo.branches[branch] = sha
        return JSONResponse({})

    async def delete_branch(self, request: Request) -> Response:
        self._auth(request, write=True)
        repo = self._get_repo(request)
        branch = unquote("/".join(self._tail_segments(request, "branch")))
        with self.lock:
            if branch == "main" or repo.branches.pop(branch, None) is None:
                raise HubError(404 if branch != "main" else 403, f"Cannot delete branch {branch}", "RevisionNotFound")
        return JSONResponse({})

    async def create_tag(self, request: Request) -> Response:
        self._auth(request, write=True)
        repo = self._get_repo(request)
        body = await request.json()
        with self.lock:
            _, sha, _ = self._rev_and_path(repo, self._tail_segments(request, "tag"))
            if body["tag"] in repo.tags:
                raise HubError(409, f"Tag {body['tag']} already exists", "Conflict")
            repo.tags[body["tag"]] = sha
        return JSONResponse({})

    async def delete_tag(self, request: Request) -> Response:
        self._auth(request, write=True)
        repo = self._get_repo(request)
        tag = unquote("/".join(self._tail_segments(request, "tag")))
        with self.lock:
            if repo.tags.pop(tag, None) is None:
                raise HubError(404, f"Tag {tag} not found", "RevisionNotFound")
        return JSONResponse({})

    # -- uploads -----------------------------------------------------------------------------------
    def _target(self, repo: Repo, request: Request, marker: str) -> tuple[str, str | None]:
        """(revision, head sha or None) of a write target."""
        rev = unquote("/".join(self._tail_segments(request, marker)))
        return rev, repo.resolve(rev)

    async def preupload(self, request: Request) -> Response:
        self._auth(request, write=True)
        repo = self._get_repo(request)
        body = await request.json()
        rev, sha = self._target(repo, request, "preupload")
        with self.lock:
            if sha is None:
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            files = repo.commits[sha].files
            out = []
            for f in body.get("files", []):
                sample = base64.b64decode(f.get("sample", ""))
                mode = "lfs" if _wants_lfs(f["path"], int(f["size"]), sample) else "regular"
                entry = files.get(f["path"])
                oid = None
                if entry is not None and (entry.lfs_sha256 is not None) == (mode == "lfs"):
                    oid = entry.lfs_sha256 or entry.oid
                item = {"path": f["path"], "uploadMode": mode, "shouldIgnore": False}
                if oid:
                    item["oid"] = oid
                out.append(item)
        return JSONResponse({"files": out, "commitOid": sha})

    async def lfs_batch(self, request: Request) -> Response:
        path = request.url.path
        repo_type = "dataset" if path.startswith("/datasets/") else "space" if path.startswith("/spaces/") else "model"
        self._auth(request, write=True)
        self._get_repo(request, repo_type)
        body = await request.json()
        if body.get("operation") != "upload" or "basic" not in body.get("transfers", ["basic"]):
            raise HubError(422, "Only basic upload transfers are supported", "BadRequest")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            if not re.fullmatch(r"[0-9a-f]{64}", oid):
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "bad oid"}})
            elif oid in self.lfs:
                objects.append({"oid": oid, "size": size})
            else:
                objects.append(
                    {
                        "oid": oid,
                        "size": size,
                        "authenticated": True,
                        "actions": {
                            "upload": {"href": f"{self.lfs_endpoint}/objects/{oid}?size={size}"},
                            "verify": {"href": f"{self.endpoint}/lfs/verify"},
                        },
                    }
                )
        return JSONResponse(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            media_type="application/vnd.git-lfs+json",
        )

    async def lfs_put(self, request: Request) -> Response:
        oid = request.path_params["oid"]
        data = await request.body()
        expected = request.query_params.get("size")
        if hashlib.sha256(data).hexdigest() != oid or (expected and int(expected) != len(data)):
            raise HubError(400, "Uploaded content does not match its oid/size", "BadRequest")
        with self.lock:
            self.lfs[oid] = data
        return Response(status_code=200)

    async def lfs_get(self, request: Request) -> Response:
        data = self.lfs.get(request.path_params["oid"])
        if data is None:
            raise HubError(404, "No such object", "EntryNotFound")
        return _bytes_response(request, data, {"ETag": f'"{request.path_params["oid"]}"'})

    async def lfs_verify(self, request: Request) -> Response:
        body = await request.json()
        data = self.lfs.get(body.get("oid"))
        if data is None or len(data) != int(body.get("size", -1)):
            raise HubError(404, "Object not found or wrong size", "EntryNotFound")
        return JSONResponse({})

    async def commit(self, request: Request) -> Response:
        self._auth(request, write=True)
        repo = self._get_repo(request)
        rev = unquote("/".join(self._tail_segments(request, "commit")))
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        header = next((ln["value"] for ln in lines if ln.get("key") == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "A commit needs a header with a summary", "BadRequest")
        create_pr = request.query_params.get("create_pr") in ("1", "true", "True")
        with self.lock:
            head = repo.resolve(rev)
            if head is None:  # like the Hub: commits go to existing branches only (create_branch first)
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            parent_commit = header.get("parentCommit")
            if parent_commit and parent_commit != head:
                raise HubError(412, "A commit has happened since. Please refresh and try again.", "PreconditionFailed")
            files = dict(repo.commits[head].files)
            staged_blobs: dict[str, bytes] = {}
            for line in lines:
                key, value = line.get("key"), line.get("value", {})
                if key == "header":
                    continue
                path = value.get("path", "").strip("/")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, "Only base64 encoding is supported", "BadRequest")
                    data = base64.b64decode(value["content"])
                    if _wants_lfs(path, len(data), data[:512]):
                        raise HubError(400, f"Push rejected: {path} must be stored in LFS", "BadRequest")
                    oid = git_sha1(data)
                    staged_blobs[oid] = data
                    files[path] = FileEntry(path, oid, len(data))
                elif key == "lfsFile":
                    sha256, size = value["oid"], int(value["size"])
                    if (
                        value.get("algo", "sha256") != "sha256"
                        or sha256 not in self.lfs
                        or len(self.lfs[sha256]) != size
                    ):
                        raise HubError(422, f"LFS object {sha256} for {path} was not uploaded", "BadRequest")
                    pointer = lfs_pointer(sha256, size)
                    staged_blobs[git_sha1(pointer)] = pointer
                    files[path] = FileEntry(path, git_sha1(pointer), size, sha256)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    gone = [p for p in files if p.startswith(path + "/")]
                    if not gone:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in gone:
                        del files[p]
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}", "BadRequest")
            self.blobs.update(staged_blobs)
            commit = self._make_commit(repo, head, files, header["summary"], header.get("description") or "")
            out = {
                "commitOid": commit.sha,
                "commitMessage": header["summary"],
                "commitUrl": f"{self._repo_url(repo)}/commit/{commit.sha}",
                "success": True,
            }
            if create_pr:
                number = max(repo.prs, default=0) + 1
                repo.prs[number] = commit.sha
                out["pullRequestUrl"] = f"{self._repo_url(repo)}/discussions/{number}"
            else:
                branch = rev[len("refs/heads/") :] if rev.startswith("refs/heads/") else rev
                repo.branches[branch] = commit.sha
        return JSONResponse(out)

    # -- downloads ---------------------------------------------------------------------------------
    async def resolve(self, request: Request) -> Response:
        path = request.url.path
        repo_type = "dataset" if path.startswith("/datasets/") else "space" if path.startswith("/spaces/") else "model"
        repo = self._get_repo(request, repo_type)
        with self.lock:
            _, sha, file_path = self._rev_and_path(repo, self._tail_segments(request, "resolve"))
            entry = repo.commits[sha].files.get(file_path)
            if repo.gated:  # the Hub answers 403 + GatedRepo to a token without granted access
                what = "dataset" if repo.type == "dataset" else repo.type
                raise HubError(403, f"Access to {what} {repo.id} is restricted and you are not in the authorized "
                               "list. Visit the repo page to ask for access.", "GatedRepo")
            if entry is None:
                raise HubError(404, f"Entry not found: {file_path}", "EntryNotFound", {"X-Repo-Commit": sha})
            headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
            if entry.lfs_sha256:
                headers.update(
                    {
                        "Location": f"{self.lfs_endpoint}/objects/{entry.lfs_sha256}",
                        "X-Linked-Etag": f'"{entry.lfs_sha256}"',
                        "X-Linked-Size": str(entry.size),
                        "ETag": f'"{entry.oid}"',
                    }
                )
                return Response(status_code=302, headers=headers)
            data = self._content(entry)
        headers["ETag"] = f'"{entry.oid}"'
        return _bytes_response(request, data, headers)

    # -- collections -------------------------------------------------------------------------------
    def _collection_json(self, c: dict) -> dict:
        owner = {"name": c["owner_name"], "type": "user" if c["owner_name"] == USER else "org"}
        return {**{k: v for k, v in c.items() if k != "owner_name"}, "owner": owner}

    def _find_collection(self, request: Request) -> dict:
        slug = f"{request.path_params['ns']}/{request.path_params['slug']}"
        c = self.collections.get(slug)
        if c is None or (c["private"] and self._auth(request) is None):
            raise HubError(404, f"Collection {slug} not found", "CollectionNotFound")
        return c

    async def create_collection(self, request: Request) -> Response:
        self._auth(request, write=True)
        body = await request.json()
        ns, title = body.get("namespace") or USER, body.get("title", "")
        if ns != USER and ns not in ORGS:
            raise HubError(403, f"Cannot create a collection in {ns}", "Forbidden")
        if not title:
            raise HubError(400, "A collection needs a title", "BadRequest")
        with self.lock:
            for c in self.collections.values():
                if c["owner_name"] == ns and c["title"] == title:
                    return JSONResponse({"error": "Collection already exists", "slug": c["slug"]}, status_code=409)
            slug_title = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
            slug = f"{ns}/{slug_title}-{self._new_sha(ns, title)[:24]}"
            c = {
                "slug": slug,
                "title": title,
                "owner_name": ns,
                "description": body.get("description"),
                "private": bool(body.get("private")),
                "items": [],
                "lastUpdated": now_iso(),
                "position": len(self.collections),
                "theme": "green",
                "upvotes": 0,
            }
            self.collections[slug] = c
        return JSONResponse(self._collection_json(c))

    async def list_collections(self, request: Request) -> Response:
        role = self._auth(request)
        owners = request.query_params.getlist("owner")
        with self.lock:
            # Like the Hub's listing: no "position" (the client numbers them), at most 4 items per collection.
            found = [
                {
                    **{k: v for k, v in self._collection_json(c).items() if k != "position"},
                    "items": c["items"][:4],
                }
                for c in self.collections.values()
                if (not owners or c["owner_name"] in owners) and (role or not c["private"])
            ]
        return self._page(request, found)

    async def get_collection(self, request: Request) -> Response:
        with self.lock:
            return JSONResponse(self._collection_json(self._find_collection(request)))

    async def delete_collection(self, request: Request) -> Response:
        self._auth(request, write=True)
        with self.lock:
            c = self._find_collection(request)
            del self.collections[c["slug"]]
        return JSONResponse({})

    async def add_collection_item(self, request: Request) -> Response:
        self._auth(request, write=True)
        body = await request.json()
        item = body.get("item", {})
        with self.lock:
            c = self._find_collection(request)
            kind, item_id = item.get("type"), item.get("id")
            if kind in ("model", "dataset", "space") and (kind, item_id) not in self.repos:
                raise HubError(404, f"{kind} {item_id} not found", "RepoNotFound")
            if any(i["id"] == item_id and i["type"] == kind for i in c["items"]):
                return JSONResponse({"error": "Item already in the collection"}, status_code=409)
            entry = {
                "_id": self._new_sha(c["slug"], item_id)[:24],
                "id": item_id,
                "type": kind,
                "position": len(c["items"]),
            }
            if body.get("note"):
                entry["note"] = {"text": body["note"], "html": body["note"]}
            if kind in ("model", "dataset", "space"):
                entry["repoType"] = kind
            c["items"].append(entry)
            c["lastUpdated"] = now_iso()
        return JSONResponse(self._collection_json(c))

    async def delete_collection_item(self, request: Request) -> Response:
        self._auth(request, write=True)
        with self.lock:
            c = self._find_collection(request)
            before = len(c["items"])
            c["items"] = [i for i in c["items"] if i["_id"] != request.path_params["item"]]
            if len(c["items"]) == before:
                raise HubError(404, "Item not found", "EntryNotFound")
        return JSONResponse({})


GIT_EMPTY = git_sha1(b"")


def _bytes_response(request: Request, data: bytes, headers: dict) -> Response:
    """200 with the bytes (none for HEAD), or 206 for a `Range: bytes=a-[b]` request (resumed downloads)."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    status, body = 200, data
    if m := re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("range", "")):
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        if start >= len(data):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
        status, body = 206, data[start : end + 1]
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    headers["Content-Length"] = str(len(body))
    return Response(
        b"" if request.method == "HEAD" else body,
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


def _wants_lfs(path: str, size: int, sample: bytes) -> bool:
    """The Hub's rule: big files, binary files and the usual weight/archive/image suffixes go to LFS."""
    if size == 0:
        return False
    if size >= LFS_THRESHOLD or path.lower().endswith(LFS_SUFFIXES) or b"\0" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(sample) - 4  # a multi-byte char cut at the 512-byte boundary is still text
    return False


def parse_front_matter(text: str) -> tuple[dict, str | None]:
    """(metadata, error) of a README's leading `---` YAML block."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if not match:
        return {}, None
    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as err:
        return {}, f"Invalid YAML: {err}"
    if not isinstance(data, dict):
        return {}, "The metadata must be a YAML mapping"
    return data, None


def validate_card_yaml(content: str, repo_type: str) -> tuple[list[dict], list[dict]]:
    """The Hub's README metadata checks that matter here: YAML parses; license, pipeline_tag, tags, datasets
    and model-index have the documented shapes."""
    data, error = parse_front_matter(content)
    if error:
        return [{"message": error}], []
    if not data:
        return [], [{"message": "Empty metadata"}]
    errors = []
    lic = data.get("license")
    if lic is not None and lic not in VALID_LICENSES:
        errors.append({"message": f'"license" must be one of the Hub licenses, got {lic!r}'})
    if repo_type == "model":
        tag = data.get("pipeline_tag")
        if tag is not None and tag not in VALID_PIPELINE_TAGS:
            errors.append({"message": f'"pipeline_tag" must be a known task, got {tag!r}'})
    for key in ("tags", "datasets"):
        value = data.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            errors.append({"message": f'"{key}" must be a list of strings'})
    model_index = data.get("model-index")
    if model_index is not None:
        errors += _validate_model_index(model_index)
    return errors, []


def _validate_model_index(model_index) -> list[dict]:
    errors = []
    if not isinstance(model_index, list):
        return [{"message": '"model-index" must be a list'}]
    for model in model_index:
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            errors.append({"message": '"model-index[].name" must be a string'})
            continue
        for result in model.get("results") or []:
            task, dataset = result.get("task") or {}, result.get("dataset") or {}
            if not isinstance(task.get("type"), str):
                errors.append({"message": '"model-index[].results[].task.type" is required'})
            if not (isinstance(dataset.get("type"), str) and isinstance(dataset.get("name"), str)):
                errors.append({"message": '"model-index[].results[].dataset" needs "type" and "name"'})
            metrics = result.get("metrics")
            if not isinstance(metrics, list) or not metrics:
                errors.append({"message": '"model-index[].results[].metrics" must be a non-empty list'})
                continue
            for metric in metrics:
                if not (isinstance(metric, dict) and "value" in metric and isinstance(metric.get("type"), str)):
                    errors.append({"message": '"metrics[]" need "type" and "value"'})
                elif not isinstance(metric["value"], int | float | str):
                    errors.append({"message": f"metric {metric['type']} has a non-scalar value"})
    return errors

"""A small loopback stand-in for the Hugging Face Hub's HTTP API, for `push_to_hub` tests.

No registry package accepts pushes (the `olah` mirror serves downloads only), so this server speaks the part of the Hub
API that `huggingface_hub` 2.x's `create_repo`, `create_commit` (what `push_to_hub` and `upload_folder` call) and
`hf_hub_download` (what `from_pretrained` calls) use:

    POST /api/repos/create                     create a model repo (409 + its url when it exists)
    POST /api/validate-yaml                    README.md metadata check (always valid)
    POST /api/models/{id}/preupload/{rev}      every file is uploaded "regular" (inline), so no LFS endpoint is needed
    POST /api/models/{id}/commit/{rev}         NDJSON: a header line, then `file` (base64) / `deletedFile` lines
    GET  /api/models/{id}[/revision/{rev}]     repo info: `sha` and `siblings`
    (and the same under /api/datasets/ and /datasets/{id}/resolve/: dataset repos, for `load_dataset` by Hub name)
    GET  /api/models/{id}/tree/{rev}[/{path}]  a folder's entries (transformers lists `additional_chat_templates/`)
    POST /api/models/{id}/paths-info/{rev}     size and oid of `paths` (what the `olah` proxy asks before a download)
    HEAD/GET /{id}/resolve/{rev}/{path}        file bytes with `X-Repo-Commit` and `ETag` (the git blob sha1)

Every commit gets a new 40-hex sha; a branch points at its latest commit and every older commit still resolves by sha.
Missing repos, revisions and files are answered 404 with the Hub's `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`,
`EntryNotFound`), from which the client raises its usual `RepositoryNotFoundError`, `RevisionNotFoundError` and
`EntryNotFoundError`. Tokens are accepted without checking. Everything lives in memory. It can also be the upstream
"huggingface.co" of `olah` run as a caching proxy.

    with LoopbackHub() as hub:      # serves on a free port of 127.0.0.1 in a thread
        ...                         # HF_ENDPOINT=hub.url for the client; hub.repos["user/repo"] for inspection
"""

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from typing_extensions import Self

REPO_ID = r"(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES = [  # (method, path pattern, handler name); the first match wins
    ("POST", r"/api/repos/create", "create_repo"),
    ("POST", r"/api/validate-yaml", "validate_yaml"),
    ("POST", rf"/api/models/{REPO_ID}/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", rf"/api/models/{REPO_ID}/commit/(?P<rev>[^/]+)", "commit"),
    ("GET", rf"/api/models/{REPO_ID}(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
    ("GET", rf"/api/models/{REPO_ID}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
    ("POST", rf"/api/models/{REPO_ID}/paths-info/(?P<rev>[^/]+)", "paths_info"),
    ("GET", rf"/{REPO_ID}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
]


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file's content, which the Hub sends as the ETag of a non-LFS file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    """A repo's history: `commits` maps a commit sha to that commit's full file tree, `branches` a name to a sha."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=lambda: {"main": ""})  # "" = no commit yet

    def resolve(self, rev: str) -> str | None:
        """The commit sha of a branch name or a full commit sha; None when neither exists."""
        if rev in self.branches:
            return self.branches[rev]
        return rev if rev in self.commits else None

    def commit(self, branch: str, lines: list[dict]) -> str:
        """Apply NDJSON commit operations on top of `branch` and move the branch to the new commit's sha."""
        parent = self.branches.get(branch, self.branches["main"])
        files = dict(self.commits.get(parent, {}))
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: d for p, d in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            elif key != "header":
                raise ValueError(f"unsupported commit operation {key!r}")
        tree = sorted((path, git_blob_sha1(data)) for path, data in files.items())
        sha = hashlib.sha1(json.dumps([parent, len(self.commits), tree]).encode()).hexdigest()
        self.commits[sha] = files
        self.branches[branch] = sha
        return sha

    def commit_folder(self, folder, branch: str = "main") -> str:
        """Commit every file under a local `folder` (as `upload_folder` would); returns the new sha."""
        files = sorted(path for path in Path(folder).rglob("*") if path.is_file())
        return self.commit(
            branch,
            [
                {
                    "key": "file",
                    "value": {
                        "path": path.relative_to(folder).as_posix(),
                        "content": base64.b64encode(path.read_bytes()).decode(),
                    },
                }
                for path in files
            ],
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects; every reply carries Content-Length
    server: "_Server"

    def log_message(self, format, *args):  # quiet; requests are recorded in `LoopbackHub.requests` instead
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str):
        path = urlsplit(self.path).path
        self.server.hub.requests.append((method, path))
        # dataset repos: the same API under /api/datasets/ and /datasets/, stored as "datasets/<id>"
        self.kind = "model"
        for prefix, replacement in (("/api/datasets/", "/api/models/"), ("/datasets/", "/")):
            if path.startswith(prefix):
                self.kind, path = "dataset", replacement + path[len(prefix) :]
                break
        self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        for route_method, pattern, name in ROUTES:
            match = re.fullmatch(pattern, path)
            if match and (route_method == method or (route_method, method) == ("GET", "HEAD")):
                params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                with self.server.hub.lock:
                    return getattr(self, name)(**params)
        self._reply(404, {"error": f"no route for {method} {path}"})

    def _reply(self, status: int, payload=None, data: bytes | None = None, headers: dict | None = None):
        if data is None:
            data = json.dumps(payload if payload is not None else {}).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str):
        self._reply(status, {"error": message}, headers={"X-Error-Code": code, "X-Error-Message": message})

    def _key(self, repo: str) -> str:
        return f"datasets/{repo}" if self.kind == "dataset" else repo

    def _repo_or_error(self, repo: str) -> Repo | None:
        if self._key(repo) not in self.server.hub.repos:
            self._error(404, "RepoNotFound", "Repository not found")
        return self.server.hub.repos.get(self._key(repo))

    # --- routes ---

    def create_repo(self):
        payload = json.loads(self.body)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        self.kind = "dataset" if payload.get("type") == "dataset" else "model"
        url = f"{self.server.hub.url}/{'datasets/' if self.kind == 'dataset' else ''}{repo_id}"
        if self._key(repo_id) in self.server.hub.repos:
            return self._reply(409, {"error": f"You already created this {self.kind} repo", "url": url})
        self.server.hub.repos[self._key(repo_id)] = Repo()
        self._reply(200, {"url": url, "name": repo_id})

    def validate_yaml(self):
        self._reply(200, {"errors": [], "warnings": []})

    def preupload(self, repo, rev):
        if self._repo_or_error(repo):
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                for f in json.loads(self.body)["files"]
            ]
            self._reply(200, {"files": files})

    def commit(self, repo, rev):
        if (history := self._repo_or_error(repo)) is None:
            return
        try:
            sha = history.commit(rev, [json.loads(line) for line in self.body.splitlines() if line.strip()])
        except ValueError as error:  # e.g. an `lfsFile` line: preupload never asks for LFS
            return self._reply(400, {"error": str(error)})
        self._reply(
            200,
            {
                "commitUrl": f"{self.server.hub.url}/{repo}/commit/{sha}",
                "commitOid": sha,
                "pullRequestUrl": None,
                "success": True,
            },
        )

    def repo_info(self, repo, rev="main"):
        if (found := self._commit_or_error(repo, rev)) is None:
            return
        sha, siblings = found[0], [{"rfilename": path} for path in sorted(found[1])]
        info = {"id": repo, "sha": sha, "siblings": siblings, "private": False, "tags": [], "downloads": 0}
        self._reply(200, {**info, "modelId": repo} if self.kind == "model" else info)

    def _commit_or_error(self, repo: str, rev: str) -> tuple[str, dict[str, bytes]] | None:
        """(sha, files) of `rev` of `repo`, or None after answering 404 RepoNotFound / RevisionNotFound."""
        if (history := self._repo_or_error(repo)) is None:
            return None
        if (sha := history.resolve(rev)) is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return sha, history.commits.get(sha, {})  # a new repo's main has no commit yet: no files

    @staticmethod
    def _path_info(path: str, data: bytes) -> dict:
        return {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}

    def tree(self, repo, rev, path=""):
        if (found := self._commit_or_error(repo, rev)) is None:
            return
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        entries, folders = [], set()
        for name, data in sorted(found[1].items()):
            if name.startswith(prefix):
                rest = name[len(prefix) :]
                if "/" not in rest or "recursive=true" in self.path.lower():
                    entries.append(self._path_info(name, data))
                if "/" in rest:
                    folders.add(prefix + rest.split("/")[0])
        entries += [{"type": "directory", "path": folder, "size": 0, "oid": ""} for folder in sorted(folders)]
        if prefix and not entries:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev!r}")
        self._reply(200, entries)

    def paths_info(self, repo, rev):
        if (found := self._commit_or_error(repo, rev)) is None:
            return
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(self.body).get("paths", [])
        else:  # form-encoded, one `paths` field per path
            paths = parse_qs(self.body.decode()).get("paths", [])
        self._reply(200, [self._path_info(p, found[1][p]) for p in paths if p in found[1]])

    def resolve(self, repo, rev, path):
        if (found := self._commit_or_error(repo, rev)) is None:
            return
        sha, data = found[0], found[1].get(path)
        if data is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {rev!r}")
        self._reply(
            200,
            data=data,
            headers={
                "X-Repo-Commit": sha,
                "ETag": f'"{git_blob_sha1(data)}"',
                "Content-Type": "application/octet-stream",
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: "LoopbackHub"


class LoopbackHub:
    """The server on a free port of 127.0.0.1, run in a daemon thread between `start()` and `stop()` (or `with`)."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for assertions
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)

    def start(self) -> "LoopbackHub":
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

"""A Hugging Face hub on 127.0.0.1 for download tests: serves folders as model repositories the way
the hub's HTTP API answers huggingface_hub (model info with the file list and sizes, ``resolve`` URLs
with the commit and ETag headers, byte ranges), and can play a gated repository, a missing one, and a
connection that breaks part-way through a file. Reached through ``HF_ENDPOINT`` / ``endpoint=``."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass
class HubState:
    repos: dict[str, Path]  # repo id -> folder served as its files
    gated: set = field(default_factory=set)
    cut_once: set = field(default_factory=set)  # files whose first GET stops half-way
    refuse: set = field(default_factory=set)  # files whose GETs drop the connection at once
    requests: list = field(default_factory=list)  # (method, path, Range header or None)
    files: dict = field(default_factory=dict)  # /files/NAME -> a file served as a download link serves it

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()


def _handler(state: HubState):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _repo(self, parts: list[str]) -> str | None:
            repo = "/".join(parts[:2])
            if repo not in state.repos:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            if repo in state.gated and not self.headers.get("Authorization"):
                self._error(401, "GatedRepo", "Access to this model is restricted")
                return None
            return repo

        def do_GET(self):  # noqa: N802 - http.server's name
            self._serve()

        def do_HEAD(self):  # noqa: N802
            self._serve()

        def _serve(self):
            path = unquote(urlparse(self.path).path)
            state.requests.append((self.command, path, self.headers.get("Range")))
            parts = [p for p in path.split("/") if p]
            if parts[:1] == ["files"] and "/".join(parts[1:]) in state.files:
                self._send(state.files["/".join(parts[1:])], "/".join(parts[1:]), {
                    "Content-Disposition": f'attachment; filename="{state.files["/".join(parts[1:])].name}"'})
            elif parts[:2] == ["api", "models"]:
                repo = self._repo(parts[2:])
                if repo:
                    self._info(repo)
            elif len(parts) > 4 and parts[2] == "resolve":
                repo = self._repo(parts)
                if repo:
                    self._file(repo, "/".join(parts[4:]))
            else:
                self._error(404, "EntryNotFound", "no such route")

        def _info(self, repo: str) -> None:
            folder = state.repos[repo]
            files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            body = json.dumps({"id": repo, "modelId": repo, "sha": state.commit(repo), "private": False,
                               "gated": "auto" if repo in state.gated else False,
                               "siblings": [{"rfilename": f, "size": (folder / f).stat().st_size} for f in files]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _file(self, repo: str, name: str) -> None:
            file = state.repos[repo] / name
            if not file.is_file():
                self._error(404, "EntryNotFound", f"{name} not found")
                return
            self._send(file, name, {"X-Repo-Commit": state.commit(repo)})

        def _send(self, file: Path, name: str, headers: dict) -> None:
            data = file.read_bytes()
            if self.command == "GET" and name in state.refuse:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            start = 0
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes="):
                start = int(wanted[6:].split("-")[0])
            self.send_response(206 if start else 200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if self.command == "HEAD":
                return
            if name in state.cut_once and not start:
                state.cut_once.discard(name)
                self.wfile.write(data[start:len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(data[start:])

    return Handler


class LocalHub:
    """``with LocalHub(HubState(...)) as url:`` serves until the block ends."""

    def __init__(self, state: HubState):
        self.state = state
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

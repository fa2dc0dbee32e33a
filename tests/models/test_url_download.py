"""`genimg models download URL` against a real HTTP server on loopback: a Civitai-style link with
Content-Disposition, a connection that breaks half-way (resumed by a Range request), a checked SHA-256."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from safetensors.torch import load_file, save_file


@pytest.fixture
def server(tmp_path):
    """Serves ``files`` (path -> bytes); the first GET of a path in ``breaks`` stops after half its body."""
    files: dict[str, bytes] = {}
    breaks: set[str] = set()
    ranges: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _head(self, body: bytes, start: int) -> None:
            self.send_response(206 if start else 200)
            self.send_header("Content-Disposition", 'attachment; filename="my model.safetensors"'
                             if self.path.startswith("/api/download") else "inline")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()

        def do_HEAD(self):
            if self.path not in files:
                self.send_error(404)
                return
            self._head(files[self.path], 0)

        def do_GET(self):
            if self.path not in files:
                self.send_error(404)
                return
            body = files[self.path]
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
            ranges.append(self.headers.get("Range") or "")
            self._head(body, start)
            if self.path in breaks:
                breaks.discard(self.path)
                self.wfile.write(body[start:start + len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)  # the connection drops mid-body
                return
            self.wfile.write(body[start:])

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files, breaks, ranges
    httpd.shutdown()


def _checkpoint(tmp_path) -> bytes:
    save_file({"model.diffusion_model.w": torch.arange(300_000, dtype=torch.float32)}, tmp_path / "src.safetensors")
    return (tmp_path / "src.safetensors").read_bytes()


def test_a_link_is_saved_under_the_servers_name_resumed_after_a_break_and_checked(cli, server, tmp_path):
    import os

    url, files, breaks, ranges = server
    body = _checkpoint(tmp_path)
    files["/api/download/models/1"] = body
    breaks.add("/api/download/models/1")
    old = os.umask(0o022)
    try:
        result = cli("models", "download", f"{url}/api/download/models/1", "-o", tmp_path / "ckpt", "--quiet",
                     "--sha256", hashlib.sha256(body).hexdigest())
    finally:
        os.umask(old)
    assert result.code == 0, result
    saved = tmp_path / "ckpt" / "my_model.safetensors"
    assert result.out.strip() == str(saved)
    assert saved.read_bytes() == body and oct(saved.stat().st_mode & 0o777) == "0o644"
    assert ranges[0] == "" and ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) > 0  # resumed, not restarted
    assert torch.equal(load_file(saved)["model.diffusion_model.w"], torch.arange(300_000, dtype=torch.float32))
    assert sorted(p.name for p in saved.parent.iterdir()) == ["my_model.safetensors"]
    again = cli("models", "download", f"{url}/api/download/models/1", "-o", tmp_path / "ckpt", "--quiet")
    assert again.code == 2 and "already exists" in again.err and "--overwrite" in again.err


def test_a_wrong_checksum_an_error_page_and_a_pickle_keep_nothing(cli, server, tmp_path):
    url, files, breaks, ranges = server
    files["/a.safetensors"] = _checkpoint(tmp_path)
    files["/login.safetensors"] = b"<html>please log in</html>"
    files["/old.ckpt"] = b"pickle bytes"
    wrong = cli("models", "download", f"{url}/a.safetensors", "-o", tmp_path / "c", "--sha256", "0" * 64, "--quiet")
    assert wrong.code == 1 and "SHA-256" in wrong.err and "nothing was saved" in wrong.err
    page = cli("models", "download", f"{url}/login.safetensors", "-o", tmp_path / "c", "--quiet")
    assert page.code == 2 and "did not give a safetensors file" in page.err
    pickle = cli("models", "download", f"{url}/old.ckpt", "-o", tmp_path / "c", "--quiet")
    assert pickle.code == 2 and "--allow-pickle" in pickle.err
    missing = cli("models", "download", f"{url}/nothing.safetensors", "-o", tmp_path / "c", "--quiet")
    assert missing.code == 2 and "404" in missing.err
    assert not (tmp_path / "c").exists()

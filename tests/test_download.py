"""download(): a local HTTP server serves generated files; checksum, truncation and HTTP errors."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from gpt2train.data.download import download
from gpt2train.errors import UserError


@pytest.fixture(scope="module")
def server(pydoc_text, hellaswag_jsonl):
    files = {
        "/text.txt": pydoc_text.encode("utf-8"),
        "/hellaswag.jsonl": hellaswag_jsonl.read_bytes(),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if self.path == "/truncated":
                body = files["/text.txt"]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 3])  # then hang up early
                self.close_connection = True
                return
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()
    httpd.server_close()


def test_download_with_checksum(tmp_path, server):
    url, files = server
    body = files["/text.txt"]
    dest = download(f"{url}/text.txt", tmp_path / "a" / "input.txt", sha256=hashlib.sha256(body).hexdigest())
    assert dest.read_bytes() == body
    assert [p.name for p in dest.parent.iterdir()] == ["input.txt"]


def test_checksum_mismatch_leaves_nothing(tmp_path, server):
    url, _ = server
    with pytest.raises(UserError, match="sha256"):
        download(f"{url}/text.txt", tmp_path / "input.txt", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_leaves_nothing(tmp_path, server):
    url, _ = server
    with pytest.raises(UserError, match="truncated|broke off"):
        download(f"{url}/truncated", tmp_path / "input.txt")
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_unreachable(tmp_path, server):
    url, _ = server
    with pytest.raises(UserError, match="HTTP 404"):
        download(f"{url}/missing", tmp_path / "x")
    with pytest.raises(UserError, match="cannot download"):
        download("http://127.0.0.1:9/none", tmp_path / "x", timeout=2)
    assert list(tmp_path.iterdir()) == []


def test_prepare_commands_with_url(tmp_path, server, monkeypatch):
    from gpt2train.cli import main

    url, _ = server
    monkeypatch.setenv("GPT2TRAIN_CACHE", str(tmp_path / "cache"))
    assert main(["prepare", "tinyshakespeare", "-o", str(tmp_path / "ts"), "--url", f"{url}/text.txt"]) == 0
    assert (tmp_path / "ts" / "tiny_shakespeare_train.bin").exists()
    assert main(["prepare", "hellaswag", "--url", f"{url}/hellaswag.jsonl"]) == 0
    assert (tmp_path / "cache" / "hellaswag" / "hellaswag_val.jsonl").exists()
    # a URL whose content is not HellaSwag is refused and leaves nothing behind
    dest = tmp_path / "hs.jsonl"
    assert main(["prepare", "hellaswag", "-o", str(dest), "--url", f"{url}/text.txt"]) == 1
    assert not list(tmp_path.glob("hs.jsonl*"))

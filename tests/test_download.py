"""resshift_core.download against a local HTTP server on 127.0.0.1 (no network needed)."""

import hashlib
import http.server
import itertools
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from resshift_core import download as dl
from resshift_core.download import DownloadError, download_file, fetch_checkpoint

# Starts like a safetensors file (u64 header length, then JSON), so the checkpoint sniff passes.
HEADER = b'{"__metadata__":{}}'
PAYLOAD = len(HEADER).to_bytes(8, "little") + HEADER + bytes(range(256)) * 600
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class RecordingServer(http.server.ThreadingHTTPServer):
    """Remembers (path, headers) of every request, for the tests to read."""

    def __init__(self, address: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler]):
        super().__init__(address, handler)
        self.requests: list[tuple[str, dict[str, str]]] = []


class Handler(http.server.BaseHTTPRequestHandler):
    server: RecordingServer

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self.server.requests.append((self.path, dict(self.headers)))
        if self.path.startswith("/file") or self.path.startswith("/org/repo/resolve/"):
            self._send(PAYLOAD)
        elif self.path == "/short":  # announces everything, sends a third, closes
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/html":
            self._send(b"<html><body>Sign in to continue</body></html>")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/file")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _send(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = RecordingServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def online(monkeypatch):
    for name in dl.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_success_with_size_sha_and_progress(server, tmp_path):
    _, base = server
    seen = []
    out = download_file(
        f"{base}/file",
        tmp_path / "m.pth",
        sha256=SHA.upper(),
        size_bytes=len(PAYLOAD),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert out == tmp_path / "m.pth" and out.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["m.pth"]
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))


def test_redirect_is_followed(server, tmp_path):
    _, base = server
    assert download_file(f"{base}/redirect", tmp_path / "r.pth").read_bytes() == PAYLOAD


def test_sha_mismatch_leaves_nothing(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="corrupt: its sha256"):
        download_file(f"{base}/file", tmp_path / "m.pth", sha256="0" * 64)
    assert leftovers(tmp_path) == []


def test_size_mismatch_leaves_nothing(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match=f"known to have {len(PAYLOAD) + 1}"):
        download_file(f"{base}/file", tmp_path / "m.pth", size_bytes=len(PAYLOAD) + 1)
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_no_file_and_no_temporary(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError) as info:
        download_file(f"{base}/short", tmp_path / "m.pth")
    assert "Nothing was saved" in str(info.value) and "m.pth" in str(info.value)
    assert leftovers(tmp_path) == []


def test_cancelling_from_the_progress_callback_removes_the_temporary(server, tmp_path):
    _, base = server

    class StopError(Exception):
        pass

    def progress(done, total):
        if done > 0 or total is None:
            raise StopError()

    dl_chunk = dl.CHUNK_SIZE
    try:
        dl.CHUNK_SIZE = 1024  # several chunks, so the callback runs mid-transfer
        dl.PROGRESS_INTERVAL_S, saved = 0.0, dl.PROGRESS_INTERVAL_S
        with pytest.raises(StopError):
            download_file(f"{base}/file", tmp_path / "m.pth", progress=progress)
    finally:
        dl.CHUNK_SIZE, dl.PROGRESS_INTERVAL_S = dl_chunk, saved
    assert leftovers(tmp_path) == []


def test_not_a_checkpoint_is_refused(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="did not send a checkpoint"):
        download_file(f"{base}/html", tmp_path / "m.pth")
    assert leftovers(tmp_path) == []


def test_404_says_what_to_put_where(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError) as info:
        download_file(f"{base}/nothing.pth", tmp_path / "models" / "m.pth")
    msg = str(info.value)
    assert "HTTP 404" in msg and f"{base}/nothing.pth" in msg
    assert f"put it in {tmp_path / 'models'} (as m.pth)" in msg
    assert not (tmp_path / "models" / "m.pth").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_connection_refused_says_what_to_put_where(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/m.pth"
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "m.pth", timeout=5)
    msg = str(info.value)
    assert "cannot be reached" in msg and "offline" in msg
    assert f"Download m.pth from {url} yourself and put it in {tmp_path}" in msg
    assert leftovers(tmp_path) == []


def test_offline_switch_stops_before_any_request(server, tmp_path, monkeypatch):
    httpd, base = server
    monkeypatch.setenv("RESSHIFT_OFFLINE", "1")
    before = len(httpd.requests)
    with pytest.raises(DownloadError, match="downloads are switched off"):
        download_file(f"{base}/file", tmp_path / "m.pth")
    assert len(httpd.requests) == before


@dataclass
class Entry:
    name: str
    file: str
    url: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    hf_revision: str | None = None


def test_fetch_from_release_url_then_reuse(server, tmp_path):
    httpd, base = server
    entry = Entry("thing", "thing.pth", url=f"{base}/file", sha256=SHA, size_bytes=len(PAYLOAD))
    first = fetch_checkpoint(entry, tmp_path)
    count = len(httpd.requests)
    assert fetch_checkpoint(entry, tmp_path) == first == tmp_path / "thing.pth"
    assert len(httpd.requests) == count  # present: not fetched again


def test_fetch_from_a_hugging_face_repository(server, tmp_path, monkeypatch):
    httpd, base = server
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    from resshift_core.registry import RegistryEntry

    entry = RegistryEntry(
        name="thing",
        file="thing.pth",
        url="http://unused.invalid/x",
        part="unet",
        what="a test",
        sha256=SHA,
        size_bytes=None,
        license="",
        hf_repo="org/repo",
        hf_filename="weights/thing_v1.pth",
    )
    url, _ = dl.entry_source(entry, endpoint=base)
    assert url == f"{base}/org/repo/resolve/main/weights/thing_v1.pth"
    out = fetch_checkpoint(entry, tmp_path, endpoint=base)
    assert out == tmp_path / "thing.pth" and out.read_bytes() == PAYLOAD
    path, headers = httpd.requests[-1]
    assert path == "/org/repo/resolve/main/weights/thing_v1.pth"
    assert {k.lower(): v for k, v in headers.items()}.get("authorization") == "Bearer hf_test_token"


def test_registry_entries_are_fetchable_descriptions():
    from resshift_core import registry

    for entry in registry.entries():
        if entry.shipped:
            continue
        if entry.download_page:  # fetched by hand (Google Drive): the error names the page
            assert not entry.downloadable and entry.download_page.startswith("https://")
            with pytest.raises(DownloadError, match=re.escape(entry.download_page)):
                dl.entry_source(entry)
            continue
        url, _ = dl.entry_source(entry)
        assert url.startswith("https://") and url.endswith(Path(entry.file).name)
        assert entry.sha256 is None or len(entry.sha256) == 64
        assert entry.size_bytes is None or entry.size_bytes > 0


def test_remove_partials(tmp_path):
    stale = tmp_path / ".m.pth.1-abc.part"
    stale.write_bytes(b"x")
    keep = tmp_path / "m.pth"
    keep.write_bytes(b"x")
    assert dl.remove_partials(tmp_path, older_than_s=-1) == 1
    assert leftovers(tmp_path) == ["m.pth"]


def test_shipped_files_match_their_registry_hash_and_size():
    import hashlib

    from resshift_core import registry

    for entry in registry.entries():
        if entry.shipped:
            assert entry.local_path is not None, entry.name
            data = entry.local_path.read_bytes()
            assert entry.size_bytes == len(data) and entry.sha256 == hashlib.sha256(data).hexdigest(), entry.name

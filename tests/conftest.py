"""Shared test helpers: where the reference data lives, torch threads, tiny networks, the fake ComfyUI."""

import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The fake ComfyUI host's fixtures, for every test module (a module importing them itself shadows
# them and trips pyflakes' F811 wherever a test takes them as arguments).
from fake_comfy import comfy, tiny_cache  # noqa: F401 -- re-exported fixtures
from resshift_core.checkpoints.loading import LoadedModel

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def reference_dirs() -> list[Path]:
    """RESSHIFT_REFERENCE_DIR: one or more folders of cases (separated by the OS path separator,
    ':' on Linux); default: the published ResShift cases and the one-step (SinSR) cases."""
    given = os.environ.get("RESSHIFT_REFERENCE_DIR")
    if given:
        return [Path(p) for p in given.split(os.pathsep) if p]
    return [SHARED / "reference" / "cases", SHARED / "reference" / "cases_one_step"]


def layouts_dir() -> Path:
    return SHARED / "reference" / "checkpoint_layouts"


def reference_cases() -> list[Path]:
    """Every case folder (one with a manifest.json) in the RESSHIFT_REFERENCE_DIR folders."""
    return sorted(
        (p for base in reference_dirs() if base.is_dir() for p in base.iterdir() if (p / "manifest.json").is_file()),
        key=lambda p: (p.parent.name, p.name),
    )


def published_layouts() -> list[Path]:
    base = layouts_dir()
    if not base.is_dir():
        return []
    return sorted(p for p in base.glob("*.json") if p.name != "index.json")


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run with one torch thread, then restore the count: tiny networks gain nothing from
    threads and lose a lot when the 2 cores are shared."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture
def torch_threads() -> Iterator[None]:
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_pair(request: pytest.FixtureRequest) -> tuple[LoadedModel, LoadedModel | None]:
    """A fresh tiny (UNet, VQGAN) pair with seed 0 (resshift_core.tiny.make_tiny): real-world SR,
    or the task given by `@pytest.mark.parametrize("tiny_pair", ["inpaint"], indirect=True)`."""
    from resshift_core.tiny import make_tiny

    return make_tiny(getattr(request, "param", "realsr"))


@contextmanager
def serving(payload: bytes) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 that answers every GET with `payload` (a stand-in for a
    release or Hugging Face address in download tests); yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output clean
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def served_entry(name: str, url: str, payload: bytes):
    """A registry entry for a bicubic x4 UNet served at `url` (a download test's published file),
    with the size and sha256 of `payload`, as the real entries carry them."""
    import hashlib

    from resshift_core import registry

    return registry.RegistryEntry(
        name=name,
        file=f"{name}.safetensors",
        url=url,
        part="unet",
        what="test",
        sha256=hashlib.sha256(payload).hexdigest(),
        size_bytes=len(payload),
        license="test",
        preset="bicsr_x4_s4",
        vae="autoencoder_vq_f4",
    )

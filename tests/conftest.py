import os
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def reference_dir() -> Path:
    return Path(os.environ.get("RESSHIFT_REFERENCE_DIR", SHARED / "reference" / "cases"))


def layouts_dir() -> Path:
    return SHARED / "reference" / "checkpoint_layouts"


def reference_cases():
    """Every case folder (one with a manifest.json) in RESSHIFT_REFERENCE_DIR."""
    base = reference_dir()
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / "manifest.json").is_file())


def published_layouts():
    base = layouts_dir()
    if not base.is_dir():
        return []
    return sorted(p for p in base.glob("*.json") if p.name != "index.json")


@contextmanager
def one_torch_thread():
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
def torch_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)

"""The registry of known checkpoints (weights/registry.json) and preset recognition."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import InputError
from .presets import DiffusionPreset


def weights_dir() -> Path:
    """`weights/` beside the package in a checkout, or the installed `resshift_weights`."""
    here = Path(__file__).resolve().parent.parent / "weights"
    if (here / "registry.json").is_file():
        return here
    try:
        # The installed copy of weights/ (pip install, non-editable). mypy reads the source tree,
        # where that package is weights/ under another name, so it may or may not find it.
        import resshift_weights  # type: ignore[import-not-found, unused-ignore]

        return Path(resshift_weights.__file__).parent
    except ImportError:
        return here


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    file: str
    url: str | None
    part: str  # "unet" or "autoencoder"
    what: str
    sha256: str | None
    size_bytes: int | None
    license: str
    preset: str | None = None
    vae: str | None = None
    architecture: dict | None = None  # the published config params (for random-weight builds)
    parameter_count: int | None = None
    shipped: bool = False  # lives in weights/ (no download)
    experimental: bool = False  # below our quality bar: usable by name, never chosen by default
    hf_repo: str | None = None  # a Hugging Face repository hosting the file (preferred over `url`)
    hf_filename: str | None = None  # its path inside that repository (default: `file`)
    hf_revision: str | None = None  # a commit or tag to pin (default: the main branch)
    # A web page the file can be fetched from by hand, for files without a direct address
    # (e.g. Google Drive, which serves a confirmation page instead of the file).
    download_page: str | None = None

    @property
    def downloadable(self) -> bool:
        """True if the file can be fetched without a person (a Hugging Face repository or a URL)."""
        return bool(self.hf_repo or self.url)

    @property
    def local_path(self) -> Path | None:
        return weights_dir() / self.file if self.shipped else None


@lru_cache(maxsize=1)
def _registry_json() -> dict:
    path = weights_dir() / "registry.json"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def entries() -> list[RegistryEntry]:
    fields = RegistryEntry.__dataclass_fields__
    out = []
    for e in _registry_json()["checkpoints"]:
        unknown = sorted(set(e) - set(fields))
        if unknown:  # a misspelt field would otherwise be dropped without a word
            raise ValueError(f"weights/registry.json: entry {e.get('name')!r} has unknown fields {unknown}")
        out.append(RegistryEntry(**e))
    return out


def preset(name: str) -> DiffusionPreset:
    presets = _registry_json()["presets"]
    if name not in presets:
        raise InputError(f"unknown preset {name!r}; known presets: {', '.join(sorted(presets))}")
    return DiffusionPreset.from_dict(presets[name], name=name)


def preset_names() -> list[str]:
    return sorted(_registry_json()["presets"])


def find(name_or_file: str) -> RegistryEntry | None:
    """The entry whose name or file name matches (case-insensitive, extension optional)."""
    key = Path(name_or_file).name.lower()
    stem = key.rsplit(".", 1)[0] if "." in key else key
    for entry in entries():
        if key == entry.file.lower() or stem in (entry.name.lower(), Path(entry.file).stem.lower()):
            return entry
    return None

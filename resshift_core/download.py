"""Fetch published checkpoints: streamed to a temporary file beside the target, checked, then
moved into place in one step, so an interrupted or corrupt download never leaves a file that
looks complete.

A registry entry is fetched from its Hugging Face repository when it names one (`hf_repo`, with
`hf_filename` and `hf_revision` optional), else from its release `url`. The size and sha256 are
checked where the registry knows them; every download is also checked for being complete
(Content-Length) and for starting like a checkpoint (zip/pickle .pth or safetensors), so an
HTML error page served with status 200 is refused too.

`progress(done_bytes, total_bytes_or_None)` is called as bytes arrive (at most every 0.1 s, and
once at the end); it may raise to cancel (ComfyUI's interrupt does), and the partial file is
removed. No ComfyUI import here: the nodes pass a callback that drives ComfyUI's progress bar.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path

from .errors import CheckpointError

ProgressCallback = Callable[[int, int | None], None]

USER_AGENT = "comfyui-resshift (resshift_core.download)"
CHUNK_SIZE = 1 << 20
PROGRESS_INTERVAL_S = 0.1
OFFLINE_ENV = ("RESSHIFT_OFFLINE", "HF_HUB_OFFLINE")
PARTIAL_SUFFIX = ".part"


class DownloadError(CheckpointError):
    """A checkpoint could not be fetched; the message says which file to put where instead."""


def offline() -> bool:
    """True when the user asked for no network (RESSHIFT_OFFLINE=1 or HF_HUB_OFFLINE=1)."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_ENV)


def _by_hand(dest: Path, url: str | None) -> str:
    where = f" from {url}" if url else ""
    return f"Download {dest.name}{where} yourself and put it in {dest.parent} (as {dest.name})."


def looks_like_checkpoint(path: str | Path) -> bool:
    """Cheap sniff of the first bytes: a torch zip archive, a legacy pickle, or safetensors."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save zip / pickle protocol 2+
        return True
    if len(head) >= 9:  # safetensors: little-endian u64 header length, then a JSON object
        n = int.from_bytes(head[:8], "little")
        return 0 < n < (1 << 32) and head[8:9] == b"{"
    return False


def _partial_path(dest: Path) -> Path:
    # Hidden and ending in .part: never listed by ComfyUI's model dropdowns or our resolver.
    return dest.with_name(f".{dest.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


def _open(url: str, headers: dict | None, auth_headers: dict | None, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})
    for key, value in (auth_headers or {}).items():
        request.add_unredirected_header(key, value)  # never sent on to a redirect's other host
    return urllib.request.urlopen(request, timeout=timeout)


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    size_bytes: int | None = None,
    progress: ProgressCallback | None = None,
    headers: dict | None = None,
    auth_headers: dict | None = None,
    timeout: float = 60.0,
    check_checkpoint: bool = True,
) -> Path:
    """Download `url` to `dest` atomically; return `dest`.

    Raises DownloadError (nothing left at `dest`, temporary file removed) on HTTP errors, an
    unreachable host, a transfer cut short, a size or sha256 mismatch, or content that is not
    a checkpoint. Exceptions raised by `progress` propagate, also with the temporary removed.
    """
    dest = Path(dest)
    if offline():
        raise DownloadError(
            f"{dest.name} is not on this machine and downloads are switched off "
            f"({' or '.join(OFFLINE_ENV)} is set). {_by_hand(dest, url)}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial_path(dest)
    host = urllib.parse.urlsplit(url).netloc or url
    try:
        try:
            response = _open(url, headers, auth_headers, timeout)
        except urllib.error.HTTPError as exc:
            hint = (
                " (the repository may be private or gated: log in with `huggingface-cli login`)"
                if exc.code in (401, 403)
                else ""
            )
            raise DownloadError(
                f"Could not download {dest.name}: the server answered HTTP {exc.code} ({exc.reason}) "
                f"for {url}{hint}. {_by_hand(dest, url)}"
            ) from None
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise DownloadError(
                f"Could not download {dest.name}: {host} cannot be reached ({reason}); this machine "
                f"may be offline. {_by_hand(dest, url)}"
            ) from None
        with response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            total = size_bytes if size_bytes is not None else expected
            if size_bytes is not None and expected is not None and expected != size_bytes:
                raise DownloadError(
                    f"Could not download {dest.name}: {url} offers {expected} bytes but the file is "
                    f"known to have {size_bytes}; it is not the expected file. {_by_hand(dest, url)}"
                )
            digest = hashlib.sha256()
            done = 0
            last_report = 0.0
            if progress is not None:
                progress(0, total)
            with open(partial, "wb") as out:
                while True:
                    try:
                        chunk = response.read(CHUNK_SIZE)
                    except (OSError, HTTPException) as exc:  # reset, timeout, IncompleteRead
                        raise DownloadError(
                            f"The download of {dest.name} broke off after {done} bytes ({exc}). "
                            f"Nothing was saved; try again. {_by_hand(dest, url)}"
                        ) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if progress is not None and now - last_report >= PROGRESS_INTERVAL_S:
                        last_report = now
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        if expected is not None and done != expected:
            raise DownloadError(
                f"The download of {dest.name} stopped after {done} of {expected} bytes (the connection "
                f"closed early). Nothing was saved; try again. {_by_hand(dest, url)}"
            )
        if size_bytes is not None and done != size_bytes:
            raise DownloadError(
                f"The download of {dest.name} has {done} bytes, but the file is known to have "
                f"{size_bytes}. Nothing was saved. {_by_hand(dest, url)}"
            )
        if sha256 is not None and digest.hexdigest().lower() != sha256.lower():
            raise DownloadError(
                f"The download of {dest.name} is corrupt: its sha256 is {digest.hexdigest()}, expected "
                f"{sha256.lower()}. Nothing was saved; try again. {_by_hand(dest, url)}"
            )
        if check_checkpoint and not looks_like_checkpoint(partial):
            raise DownloadError(
                f"{url} did not send a checkpoint (the {done} bytes received are not a .pth or "
                f"safetensors file; perhaps an error page). Nothing was saved. {_by_hand(dest, url)}"
            )
        if progress is not None:
            progress(done, total if total is not None else done)
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return dest


# -- registry entries ---------------------------------------------------------------------------


def entry_source(entry, endpoint: str | None = None) -> tuple[str, dict]:
    """(url, auth headers) for a registry entry: its Hugging Face repository if it names one
    (huggingface_hub builds the address and the login token), else its release URL."""
    repo = entry.hf_repo
    if repo:
        filename = entry.hf_filename or entry.file
        revision = entry.hf_revision
        endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
        try:
            from huggingface_hub import hf_hub_url
            from huggingface_hub.utils import build_hf_headers

            url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
            auth = {k: v for k, v in build_hf_headers().items() if k.lower() == "authorization"}
        except ImportError:  # huggingface_hub is a dependency, but keep working without it
            base = (endpoint or "https://huggingface.co").rstrip("/")
            url = f"{base}/{repo}/resolve/{urllib.parse.quote(revision or 'main', safe='')}/{filename}"
            auth = {}
        return url, auth
    if getattr(entry, "url", None):
        return entry.url, {}
    raise DownloadError(manual_download_message(entry, None))


def manual_download_message(entry, folder: str | Path | None, alternatives: str = "") -> str:
    """The sentence for a file that cannot be downloaded automatically: where to get it (its
    `download_page`, if the registry knows one), where to put it (`folder`, if known), and
    `alternatives` (e.g. ", or pass the file's path") before the full stop."""
    page = getattr(entry, "download_page", None)
    where = f"put it in {folder}" if folder is not None else "put it in the models folder"
    if page:
        return (
            f"{entry.name} cannot be downloaded automatically (it has no direct address): download {entry.file} "
            f"by hand from {page} and {where} (as {entry.file}){alternatives}."
        )
    return f"{entry.name} has no download address: get {entry.file} yourself and {where}{alternatives}."


def fetch_checkpoint(
    entry,
    folder: str | Path,
    *,
    progress: ProgressCallback | None = None,
    endpoint: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """The entry's file in `folder`, downloaded there first if it is not already present."""
    dest = Path(folder) / entry.file
    if dest.is_file():
        return dest
    if not (getattr(entry, "hf_repo", None) or getattr(entry, "url", None)):
        raise DownloadError(manual_download_message(entry, dest.parent))
    url, auth = entry_source(entry, endpoint)
    return download_file(
        url,
        dest,
        sha256=getattr(entry, "sha256", None),
        size_bytes=getattr(entry, "size_bytes", None),
        progress=progress,
        auth_headers=auth,
        timeout=timeout,
    )


def remove_partials(folder: str | Path, older_than_s: float = 24 * 3600) -> int:
    """Delete temporary files left by downloads killed outright (e.g. by a power cut)."""
    count = 0
    cutoff = time.time() - older_than_s
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for path in folder.glob(f".*{PARTIAL_SUFFIX}"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                count += 1
        except OSError:
            pass
    return count


__all__ = [
    "DownloadError",
    "download_file",
    "entry_source",
    "fetch_checkpoint",
    "looks_like_checkpoint",
    "manual_download_message",
    "offline",
    "remove_partials",
]

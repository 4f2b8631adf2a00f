"""Read a checkpoint file into a flat, canonical state dict without unpickling code.

`.pth`/`.pt`/`.ckpt`/`.bin` files go through `torch.load(weights_only=True)`, which refuses
anything but tensors and plain containers; `.safetensors` through safetensors. The file's
type is decided by its first bytes, not its name, so a renamed file still loads (or fails
with a message that says what it really is).
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import torch

from ..errors import CheckpointError

# Wrappers the published code (and common trainers) put around the weights.
# Order matters: EMA weights are preferred over raw ones where a trainer saved both.
WRAPPER_KEYS = ("state_dict", "params_ema", "ema", "model", "params")
# Prefixes added by DataParallel/DDP (`module.`) and torch.compile (`_orig_mod.`).
KEY_PREFIXES = ("module.", "_orig_mod.")
Value = TypeVar("Value")  # canonical_keys keeps the values, whatever they are

ZIP_MAGIC = b"PK\x03\x04"
LEGACY_PICKLE_MAGIC = b"\x80"  # protocol 2+ pickle: the pre-1.6 torch.save format


def sniff_format(path: Path) -> str:
    """'safetensors', 'torch-zip', 'torch-legacy', or 'unknown' from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(ZIP_MAGIC):
        return "torch-zip"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(LEGACY_PICKLE_MAGIC):
        return "torch-legacy"
    return "unknown"


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}. Check the path, or download the file first.")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the path of a .pth or .safetensors file inside it.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the download or copy did not finish. Fetch it again.")


def _load_safetensors(path: Path) -> tuple[dict, dict]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            for key in f.keys():  # noqa: SIM118 -- a safe_open handle is not iterable, only keys() lists it
                tensors[key] = f.get_tensor(key)
        return tensors, metadata
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}). It is probably truncated or "
            "corrupt: download or convert it again."
        ) from exc


def _load_torch(path: Path, fmt: str) -> object:
    try:
        if path.suffix.lower() == ".safetensors":
            # A PyTorch file named .safetensors: torch.load would pick its reader by that name, so
            # it gets the open file instead (no mmap then).
            with open(path, "rb") as f:
                return torch.load(f, map_location="cpu", weights_only=True)
        # mmap keeps the tensors in the page cache instead of a second copy in memory.
        return torch.load(str(path), map_location="cpu", weights_only=True, mmap=(fmt == "torch-zip"))
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds Python objects other than tensors, so it was not loaded: unpickling "
            "them could run arbitrary code. Load it once in a trusted environment, save only its "
            "state_dict (or convert it with `python -m resshift_core convert`), and use that. "
            f"(torch said: {_first_line(exc)})"
        ) from exc
    except Exception as exc:  # a damaged file can make the unpickler fail in any way (IndexError, EOFError, ...)
        raise CheckpointError(
            f"{path} could not be read as a PyTorch checkpoint ({_first_line(exc)}). "
            "The file is probably truncated or corrupt: download it again."
        ) from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the weights inside the wrappers the published code accepts, strip key prefixes."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source} does not contain a state dict (found {type(obj).__name__}).")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(
            f"{source} contains no tensors (top-level keys: {sorted(map(str, obj))[:8]}). It is not a model checkpoint."
        )
    return canonical_keys(tensors)


def canonical_keys(state_dict: Mapping[str, Value]) -> dict[str, Value]:
    """Strip `module.` / `_orig_mod.` prefixes in any combination (DDP, torch.compile)."""
    out = {}
    for key, value in state_dict.items():
        name = key
        stripped = True
        while stripped:
            stripped = False
            for prefix in KEY_PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    stripped = True
        out[name] = value
    return out


WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Integer tensors a ResShift checkpoint may hold: Swin index tables and our pixel-fold factor.
INTEGER_KEYS = ("relative_position_index", "pixel_unshuffle")
WEIGHT_SUFFIXES = (".weight", ".bias")  # an integer tensor under such a name is a quantised weight


def check_tensor_kinds(state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse what no ResShift network stores, in one sentence, before it is cast silently:
    sparse, meta (no data), complex, float8 or quantised-integer weights."""
    for key, tensor in state_dict.items():
        if tensor.layout != torch.strided:
            raise CheckpointError(f"{source}: tensor {key} is sparse ({tensor.layout}); save the dense weights")
        if tensor.is_meta:
            raise CheckpointError(
                f"{source}: tensor {key} has no data (a meta tensor): the file was saved from an unmaterialised "
                "model; save it again after loading real weights"
            )
        if tensor.dtype in WEIGHT_DTYPES:
            continue
        integer = not tensor.is_floating_point() and not tensor.is_complex()
        if integer and (key.endswith(INTEGER_KEYS) or not key.endswith(WEIGHT_SUFFIXES)):
            continue  # an index table, or a trainer's counter (e.g. `step`), which loading drops
        raise CheckpointError(
            f"{source}: tensor {key} is stored as {str(tensor.dtype).replace('torch.', '')}, which a ResShift "
            "network does not use; convert the file to float16, bfloat16 or float32 weights"
        )


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(canonical state dict, safetensors metadata or {}) from any supported file."""
    path = Path(path)
    _check_exists(path)
    try:
        fmt = sniff_format(path)
    except OSError as exc:  # unreadable (permissions, a dead network mount, an I/O error)
        raise CheckpointError(
            f"cannot read {path}: {exc.strerror or exc}; check the file's permissions (or copy it somewhere readable)"
        ) from None
    if fmt == "safetensors":
        tensors, metadata = _load_safetensors(path)
        state_dict = canonical_keys(tensors)
        check_tensor_kinds(state_dict, str(path))
        return state_dict, metadata
    if fmt in ("torch-zip", "torch-legacy"):
        loaded = _load_torch(path, fmt)
        state_dict = unwrap_state_dict(loaded, source=str(path))
        check_tensor_kinds(state_dict, str(path))
        return state_dict, _settings_beside_the_weights(loaded)
    raise CheckpointError(
        f"{path} is neither a PyTorch checkpoint nor a safetensors file (it starts with bytes "
        f"{_first_bytes(path)!r}). If it is an HTML page or a partial download, fetch the file again."
    )


# Plain settings a trainer may save beside the weights in a .pth (Distilled-ResShift's training
# files: {"ema": ..., "noise_mode": "concat", "cond_lq": "pixel"}), read as safetensors metadata is.
SETTING_KEYS = ("noise_mode", "noise_channels", "cond_lq")


def _settings_beside_the_weights(obj: object) -> dict[str, str]:
    if not isinstance(obj, Mapping):
        return {}
    return {
        key: str(obj[key])
        for key in SETTING_KEYS
        if isinstance(obj.get(key), (str, int)) and not isinstance(obj.get(key), bool)
    }


def _first_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(8)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The canonical state dict of a checkpoint file (metadata dropped)."""
    return read_checkpoint(path)[0]


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """Header metadata of a safetensors file without reading its tensors."""
    path = Path(path)
    _check_exists(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path} is too short to be a safetensors file.")
        (n,) = struct.unpack("<Q", raw)
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path} has a corrupt safetensors header ({exc}).") from exc
    return dict(header.get("__metadata__") or {})

"""Everything the nodes ask of ComfyUI, in one place (checked against ComfyUI v0.3.64).

Devices, dtypes and memory only through `comfy.model_management`; one
`comfy.model_patcher.ModelPatcher` per network, always loaded fully (ComfyUI's partial
low-VRAM loading only moves `comfy.ops` layers, which ours are not); progress through
`comfy.utils.ProgressBar`; cancellation through the host's interrupt; model files through
`folder_paths`. The host modules are looked up at call time, never bound at import.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable

import torch

from resshift_core.devices import dtype_from_name

log = logging.getLogger("ResShift")

MODELS_FOLDER = "resshift"


def mm():
    return importlib.import_module("comfy.model_management")


def comfy_utils():
    return importlib.import_module("comfy.utils")


def folder_paths():
    return importlib.import_module("folder_paths")


# -- the models folder ----------------------------------------------------------------------------


def register_model_folder() -> None:
    """`models/resshift` with the host's checkpoint extensions. A folder that
    extra_model_paths.yaml registered first (it is read before custom nodes load, with no
    extensions) keeps its paths, after models/resshift, as for ComfyUI's own folders."""
    fp = folder_paths()
    default = os.path.join(fp.models_dir, MODELS_FOLDER)
    extensions = set(getattr(fp, "supported_pt_extensions", {".safetensors", ".pth", ".pt", ".ckpt", ".bin"}))
    if MODELS_FOLDER in fp.folder_names_and_paths:
        paths, old_extensions = fp.folder_names_and_paths[MODELS_FOLDER]
        paths = [default] + [p for p in paths if p != default]
        fp.folder_names_and_paths[MODELS_FOLDER] = (paths, extensions | set(old_extensions))
    else:
        fp.folder_names_and_paths[MODELS_FOLDER] = ([default], extensions)


def download_folder() -> str:
    """Where published checkpoints are fetched to: models/resshift."""
    return model_folders()[0]


def model_folders() -> list[str]:
    return folder_paths().get_folder_paths(MODELS_FOLDER)


def model_files() -> list[str]:
    return folder_paths().get_filename_list(MODELS_FOLDER)


def model_file_path(name: str) -> str | None:
    return folder_paths().get_full_path(MODELS_FOLDER, name)


# -- devices, dtypes -----------------------------------------------------------------------------


def intermediate_device() -> torch.device:
    return mm().intermediate_device()


def pick_dtype(part: str, choice: str, parameters: int) -> torch.dtype:
    """An explicit choice, or the host's: its --fp16-unet/--bf16-vae-style flags and what the
    device runs well. ResShift UNets run in bf16 where the host prefers it (fp16 only when the
    host is told to); the VQGAN stays in fp32 unless the host says otherwise (its codebook
    lookup is sensitive to rounding)."""
    if choice != "auto":
        return dtype_from_name(choice)
    m = mm()
    if part == "unet":
        return m.unet_dtype(
            device=m.get_torch_device(), model_params=parameters, supported_dtypes=[torch.bfloat16, torch.float32]
        )
    return m.vae_dtype(device=m.vae_device(), allowed_dtypes=[])


def make_patcher(module: torch.nn.Module, part: str):
    """A ModelPatcher for one network: the UNet between the host's device and its UNet offload
    device, the VQGAN between the VAE devices (so --cpu-vae and --gpu-only apply)."""
    m = mm()
    patcher_cls = importlib.import_module("comfy.model_patcher").ModelPatcher
    if part == "unet":
        load_device, offload_device = m.get_torch_device(), m.unet_offload_device()
    else:
        load_device, offload_device = m.vae_device(), m.vae_offload_device()
    return patcher_cls(module, load_device=load_device, offload_device=offload_device)


def offload_device(part: str) -> torch.device:
    m = mm()
    return m.unet_offload_device() if part == "unet" else m.vae_offload_device()


def normal_tensors():
    """ComfyUI runs every node under torch.inference_mode(); weights created or moved there
    become inference tensors, which some of our caches cannot stamp (Tensor._version). Our
    weights are created and placed in normal mode (they are used without autograd all the same)."""
    return torch.inference_mode(False)


def load(patcher, memory_required: int = 0) -> torch.device:
    """Load one network fully onto its device, letting the host unload other models to make
    room for it and `memory_required` bytes of activations; returns where its weights are."""
    with normal_tensors():
        mm().load_models_gpu([patcher], memory_required=int(memory_required), force_full_load=True)
    return weights_device(patcher.model, patcher.load_device)


def weights_device(module: torch.nn.Module, fallback: torch.device) -> torch.device:
    devices = {t.device for t in module.parameters()} | {t.device for t in module.buffers()}
    if len(devices) == 1:
        return devices.pop()
    if not devices:
        return torch.device(fallback)
    # Only a host that keeps weights in RAM (--novram) leaves them behind, and then all of them.
    raise RuntimeError(f"internal error: network weights are spread over {sorted(map(str, devices))}")


def free_memory_bytes(device: torch.device) -> int:
    return int(mm().get_free_memory(device))


def is_oom(exc: BaseException) -> bool:
    m = mm()
    if isinstance(exc, m.InterruptProcessingException):
        return False
    oom = getattr(m, "OOM_EXCEPTION", None)
    if oom is not None and oom is not Exception and isinstance(exc, oom):
        return True
    cuda_oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if cuda_oom is not None and isinstance(exc, cuda_oom):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and "out of memory" in str(exc).lower()


def after_oom(patchers: Iterable, memory_required: int) -> None:
    """Free accelerator memory through the host: drop cached blocks, and ask it to make room
    (unloading other models) while keeping ours loaded."""
    m = mm()
    m.soft_empty_cache()
    patchers = list(patchers)
    if patchers:
        with normal_tensors():
            m.load_models_gpu(patchers, memory_required=int(memory_required), force_full_load=True)


# -- progress, interrupt --------------------------------------------------------------------------


def check_interrupt() -> None:
    mm().throw_exception_if_processing_interrupted()


def progress_bar(total: int):
    return comfy_utils().ProgressBar(max(1, int(total)))


def preview_size() -> int | None:
    """The host's preview size, or None when the user turned sampler previews off
    (`--preview-method none`, ComfyUI's default)."""
    try:
        from comfy.cli_args import args
    except ImportError:  # a host without command-line settings: no previews
        return None
    method = getattr(args, "preview_method", None)
    if method is None or getattr(method, "value", method) == "none":
        return None
    return int(getattr(args, "preview_size", 512))


def preview_image(rgb: torch.Tensor, max_size: int) -> tuple:
    """H x W x 3 in [0, 1] -> what ComfyUI's progress hook sends to the browser."""
    from PIL import Image

    pixels = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return ("JPEG", Image.fromarray(pixels), max_size)

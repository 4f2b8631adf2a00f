"""Turn a checkpoint file into a ready network plus what it is (spandrel-style descriptor).

The architecture is read off the weights (never a config file); the diffusion preset comes from
an explicit choice, our safetensors metadata, a Distilled-ResShift header, the registry by file
name, or the layout, in that order, and the descriptor says which. `inspect` also lists every
registry preset that fits the architecture.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar, cast

import torch
from torch import nn

from .. import registry
from ..errors import ArchitectureError, CheckpointError, ResShiftError
from ..models.unet import ResShiftUNet, UNetConfig
from ..models.vqgan import VQGAN, VQGANConfig
from ..presets import DiffusionPreset
from .detect_unet import detect_unet_config, looks_like_unet
from .detect_vqgan import detect_vqgan_config, looks_like_vqgan
from .fitting import fitting_presets
from .io import read_checkpoint
from .students import distilled_preset, follow_weights_noise_map, is_distilled_metadata

METADATA_FORMAT = "resshift-core/1"
PART_UNET = "unet"
PART_VAE = "autoencoder"

# The network a LoadedModel holds: LoadedModel[ResShiftUNet] from load_unet, LoadedModel[VQGAN] from load_vae.
Network = TypeVar("Network", bound=nn.Module)


@dataclass
class LoadedModel(Generic[Network]):
    """A built network and everything a caller needs to use it."""

    part: str  # "unet" or "autoencoder"
    model: Network
    config: UNetConfig | VQGANConfig
    preset: DiffusionPreset | None  # UNets only
    preset_source: str  # where the preset came from: explicit, metadata, registry:<name>, layout
    source: str  # file path or "<memory>"
    parameter_count: int
    registry_name: str | None = None

    def describe(self) -> dict:
        """What `inspect` prints: part, architecture, preset, size."""
        d = {
            "file": self.source,
            "part": self.part,
            "parameters": self.parameter_count,
            "architecture": self.config.to_dict(),
        }
        if self.registry_name:
            d["registry_name"] = self.registry_name
        if self.preset is not None:
            d["preset"] = self.preset.to_dict()
            d["preset_source"] = self.preset_source
        return d


def detect_part(state_dict: dict) -> str:
    if looks_like_unet(state_dict):
        return PART_UNET
    if looks_like_vqgan(state_dict):
        return PART_VAE
    sample = ", ".join(sorted(state_dict)[:6])
    raise ArchitectureError(
        f"unknown architecture: the weights are neither a ResShift UNet (keys input_blocks.*, "
        f"time_embed.*) nor a VQGAN (keys encoder.*, decoder.*, quantize.*); first keys: {sample}"
    )


def _check_finite(state_dict: dict, source: str) -> None:
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"{source}: weight {key} contains NaN or infinity. The checkpoint is corrupt "
                "(or was saved after training diverged); use another file."
            )


def detect_on_meta(state_dict: dict, part: str) -> tuple[UNetConfig | VQGANConfig, nn.Module]:
    """The architecture read off the weights, built on the meta device (nothing allocated)."""
    with torch.device("meta"):
        if part == PART_UNET:
            unet_config = detect_unet_config(state_dict)
            return unet_config, ResShiftUNet(unet_config)
        vqgan_config = detect_vqgan_config(state_dict)
        return vqgan_config, VQGAN(vqgan_config)


def _owned_copy(t: torch.Tensor, device: torch.device | str, dtype: torch.dtype) -> torch.Tensor:
    """`t` copied to `device` (floating point cast to `dtype`). Convolution kernels on the CPU
    come out channels_last, the layout the pipeline runs them in (oneDNN's fast one): its own
    `.to(memory_format=channels_last)` is then a no-op, where converting afterwards left every
    old kernel as a freed hole the allocator kept (+0.3 GB resident for v3 + f4)."""
    layout = torch.channels_last if t.dim() == 4 and torch.device(device).type == "cpu" else torch.contiguous_format
    return t.to(device=device, dtype=dtype if t.is_floating_point() else None, memory_format=layout, copy=True)


def _build(
    model: nn.Module, state_dict: dict, source: str, part: str, device: torch.device | str, dtype: torch.dtype
) -> nn.Module:
    """Load weights into a model built on the meta device, each tensor copied once into memory
    of its own on `device` in `dtype` (integer buffers keep theirs).

    The readers map the file (safetensors, torch.load(mmap=True)); assigning those tensors as
    they are kept the whole mapping resident for as long as any one of them lived, so once the
    pipeline re-laid the convolution weights out (channels_last) the process held the weights
    twice (+0.7 GB for v3 + f4). Owned copies let the mapping go when the state dict does."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise CheckpointError(
            f"{source}: the {part} weights are incomplete: {len(missing)} tensors missing "
            f"(e.g. {', '.join(missing[:4])}). The file is not a complete ResShift checkpoint."
        )
    for key, ref in expected.items():
        if tuple(state_dict[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{source}: tensor {key} has shape {tuple(state_dict[key].shape)}, the detected "
                f"architecture needs {tuple(ref.shape)}."
            )
    owned = {k: _owned_copy(state_dict[k], device, dtype) for k in expected}
    model.load_state_dict(owned, strict=True, assign=True)
    left_on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left_on_meta:  # a non-persistent buffer the model must derive itself: a bug, not bad input
        raise RuntimeError(f"internal error: {part} tensors not materialised after loading: {left_on_meta[:4]}")
    return model.eval().requires_grad_(False)


def _preset_from_metadata(metadata: dict, source: str = "the checkpoint") -> DiffusionPreset | None:
    raw = metadata.get("resshift.preset")
    if not raw:
        return None
    try:
        return DiffusionPreset.from_dict(json.loads(raw))
    except (json.JSONDecodeError, TypeError, ResShiftError) as exc:
        why = f"not JSON ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise CheckpointError(
            f"{source}: the preset in its metadata is damaged: {why}; name a preset (--preset, or the "
            "loader's preset) or write the file again with `convert`"
        ) from None


def preset_from_layout(config: UNetConfig) -> tuple[DiffusionPreset, str]:
    """Best guess of the preset from the architecture alone, with a note on its certainty."""
    ratio = max(1, config.lq_size // config.image_size)
    if config.noise_channels and config.noise_injection == "add":
        return follow_weights_noise_map(registry.preset("distilled_x4"), config), (
            "layout (a noise_proj convolution: a Distilled-ResShift student; x4 assumed: "
            "choose the preset distilled_x2 for an x2 student)"
        )
    if config.noise_channels:
        return registry.preset("rsd_x4"), (
            "layout (a noise-map input channel: RSD assumed; a Distilled-ResShift student without its "
            "metadata needs the preset distilled_x4 or distilled_x2)"
        )
    if config.pixel_unshuffle > 1:  # only our pixel-space models fold pixels (the weights store it)
        return registry.preset("tiny_realsr_x4"), "layout (pixel folding: our pixel-space real-world x4)"
    if config.cond_mask:
        return registry.preset("inpaint_s4"), "layout (mask channel: inpainting)"
    if config.in_channels == 8:
        return registry.preset("faceir_s4"), "layout (8-channel latent: face restoration)"
    if ratio == 2:
        return registry.preset("realsr_x2_s4"), "layout (one LR downsampling: x2)"
    if ratio == 1:
        return registry.preset("realsr_x4_s4"), (
            "layout (x4; the 4-step journal settings were assumed: for the 15-step v1/v2 models "
            "choose the preset realsr_x4_s15)"
        )
    return registry.preset("realsr_x4_s4").with_overrides(sf=max(1, 4 // ratio)), "layout (unrecognised LR ratio)"


@dataclass(frozen=True)
class PresetChoice:
    """The preset a UNet file gets, where it came from, and a warning when it was guessed."""

    preset: DiffusionPreset
    source: str  # explicit, metadata, metadata (Distilled-ResShift), registry:<name>, layout (...)
    registry_name: str | None
    warning: str | None = None


def resolve_preset(
    config: UNetConfig,
    source: str,
    metadata: dict,
    preset: str | DiffusionPreset | None,
) -> PresetChoice:
    """The preset, from (in this order) the caller, our metadata, Distilled-ResShift's metadata,
    the registry by file name, or the layout."""
    entry = registry.find(source) if source != "<memory>" else None
    reg_name = entry.name if entry else None
    if isinstance(preset, DiffusionPreset):
        return PresetChoice(follow_weights_noise_map(preset, config), "explicit", reg_name)
    if isinstance(preset, str):
        return PresetChoice(follow_weights_noise_map(registry.preset(preset), config), "explicit", reg_name)
    from_meta = _preset_from_metadata(metadata, source)
    if from_meta is not None:
        return PresetChoice(from_meta, "metadata", reg_name)
    if is_distilled_metadata(metadata):
        student = distilled_preset(config, metadata, source, entry)
        return PresetChoice(student.preset, student.source, reg_name, student.warning)
    if entry is not None and entry.part == PART_UNET and entry.preset:
        chosen = follow_weights_noise_map(registry.preset(entry.preset), config)
        return PresetChoice(chosen, f"registry:{entry.name}", entry.name)
    guess, why = preset_from_layout(config)
    warning = f"{source}: no preset recorded for this file; using {guess.name} from the {why}."
    return PresetChoice(guess, why, None, warning)


def load_model(
    path_or_state: str | Path | dict,
    *,
    expect: str | None = None,
    preset: str | DiffusionPreset | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> LoadedModel:
    """Load any ResShift UNet or VQGAN checkpoint. `expect` ("unet"/"autoencoder") checks the part."""
    metadata: dict[str, str]
    if isinstance(path_or_state, dict):
        state_dict, metadata, source = path_or_state, {}, "<memory>"
    else:
        source = str(path_or_state)
        state_dict, metadata = read_checkpoint(path_or_state)
    part = detect_part(state_dict)
    if expect is not None and part != expect:
        if expect == PART_UNET:
            raise ArchitectureError(
                f"{source} is a VQGAN/autoencoder checkpoint, not a ResShift UNet: load it as the VAE "
                "(--vae on the command line, the Load ResShift VAE node in ComfyUI)."
            )
        raise ArchitectureError(
            f"{source} is a ResShift UNet checkpoint, not a VQGAN: load it as the model "
            "(--model on the command line, the Load ResShift Model node in ComfyUI)."
        )
    _check_finite(state_dict, source)
    config, model = detect_on_meta(state_dict, part)
    model = _build(model, state_dict, source, part, device, dtype)
    del state_dict  # the file's mapping goes with it (see _build)
    n_params = sum(p.numel() for p in model.parameters())
    if isinstance(config, UNetConfig):  # part == PART_UNET
        choice = resolve_preset(config, source, metadata, preset)
        if choice.warning:
            warnings.warn(choice.warning, stacklevel=2)
        return LoadedModel(part, model, config, choice.preset, choice.source, source, n_params, choice.registry_name)
    entry = registry.find(source) if source != "<memory>" else None
    return LoadedModel(part, model, config, None, "", source, n_params, entry.name if entry else None)


def load_unet(path_or_state, **kwargs) -> LoadedModel[ResShiftUNet]:
    # expect= refuses anything but a UNet, so the network is a ResShiftUNet.
    return cast("LoadedModel[ResShiftUNet]", load_model(path_or_state, expect=PART_UNET, **kwargs))


def load_vae(path_or_state, **kwargs) -> LoadedModel[VQGAN]:
    kwargs.pop("preset", None)
    return cast("LoadedModel[VQGAN]", load_model(path_or_state, expect=PART_VAE, **kwargs))


def inspect_checkpoint(path: str | Path, preset: str | DiffusionPreset | None = None) -> dict:
    """What a checkpoint is (part, architecture, preset, parameter count), without running it.

    The network is built on the meta device, so nothing the size of the weights is allocated.
    """
    state_dict, metadata = read_checkpoint(path)
    part = detect_part(state_dict)
    source = str(path)
    config, model = detect_on_meta(state_dict, part)
    expected = model.state_dict()
    extra = sorted(k for k in state_dict if k not in expected)
    missing = sorted(k for k in expected if k not in state_dict)
    info = LoadedModel(part, model, config, None, "", source, sum(p.numel() for p in model.parameters()))
    fitting: list[str] | None = None
    if isinstance(config, UNetConfig):  # part == PART_UNET
        choice = resolve_preset(config, source, metadata, preset)
        info.preset, info.preset_source, info.registry_name = choice.preset, choice.source, choice.registry_name
        fitting = fitting_presets(config)
    else:
        entry = registry.find(source)
        info.registry_name = entry.name if entry else None
    d = info.describe()
    if fitting is not None:
        d["fitting_presets"] = fitting  # the registry presets these weights can be sampled with
    d["tensors_in_file"] = len(state_dict)
    d["dtypes"] = sorted({str(t.dtype).replace("torch.", "") for t in state_dict.values()})
    if extra:
        d["ignored_keys"] = extra[:10] + (["..."] if len(extra) > 10 else [])
    if missing:
        d["missing_keys"] = missing[:10] + (["..."] if len(missing) > 10 else [])
    if metadata:
        d["metadata_format"] = metadata.get("format")
    return d

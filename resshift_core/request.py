"""One request, one entry point: `load_pipeline(...)` turns what a user names into a ready pipeline.

Front-ends (the command line, `bench`, scripts) say which model, VAE, task, preset, device and
dtype they want, in words or as already loaded networks; this module resolves names (files,
published names, the model folders, downloads), pairs and checks model and VAE, and applies
preset and spacing overrides, so every front-end behaves alike. What to do with images is then
`ResShiftPipeline.restore(...)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from . import registry
from .checkpoints.loading import LoadedModel, load_unet, load_vae
from .checkpoints.students import follow_weights_noise_map
from .compiled import DEFAULT as DEFAULT_COMPILE
from .compiled import CompileConfig, check_compile_support, compile_pipeline
from .devices import channels_last_for, dtype_name, pick_device, resolve_dtype
from .download import ProgressCallback
from .errors import InputError
from .model_files import default_download_dir, resolve_checkpoint
from .models.unet import UNetConfig
from .pipeline import ResShiftPipeline
from .presets import TASKS, DiffusionPreset
from .request_checks import display_name
from .schedule import SPACINGS
from .tiny import UNTRAINED_TINY, make_tiny

# The published checkpoint each task runs when no model is named (realsr: the shipped model).
TASK_DEFAULTS: dict[str, str | None] = {
    "realsr": None,
    "bicsr": "resshift_bicsrx4_s4",
    "inpaint": "resshift_inpainting_imagenet_s4",
    "faceir": "resshift_faceir_s4",
}
DEFAULT_VAE = "autoencoder_vq_f4"

ModelSpec = str | Path | LoadedModel | None
Log = Callable[[str], None]


def default_model_name(task: str) -> str:
    """The model a task runs when none is named: for realsr the shipped small model (unless it is
    experimental), else the task's published checkpoint; untrained-tiny if nothing fits."""
    if task not in TASK_DEFAULTS:
        raise InputError(f"unknown task {task!r}: choose one of {', '.join(TASK_DEFAULTS)}")
    name = TASK_DEFAULTS[task]
    if name is not None:
        return name
    shipped = [e for e in registry.entries() if e.shipped and e.part == "unet" and not e.experimental]
    return shipped[0].name if shipped else UNTRAINED_TINY


def default_vae_name(model_file: str) -> str:
    """The VQGAN a published model was trained with (by its file name), else the f4 VQGAN."""
    entry = registry.find(Path(model_file).name)
    if entry is not None and entry.vae:
        return entry.vae
    return DEFAULT_VAE


def _preset_override(preset: str | DiffusionPreset | None) -> DiffusionPreset | None:
    if preset is None or isinstance(preset, DiffusionPreset):
        return preset
    return registry.preset(preset)


def _resolve(
    spec: str | Path, part: str, models_dirs: Sequence[str | Path], download: bool, progress: ProgressCallback | None
) -> Path:
    download_to = (Path(models_dirs[0]) if models_dirs else default_download_dir()) if download else None
    return resolve_checkpoint(str(spec), part, list(models_dirs), download_to=download_to, progress=progress)


def _load_unet(
    model: ModelSpec,
    task: str | None,
    preset: DiffusionPreset | None,
    models_dirs,
    download,
    progress,
    log: Log,
    place: dict,
) -> tuple[LoadedModel, LoadedModel | None]:
    """The UNet, and the VQGAN that comes with it when it is built here (untrained-tiny).
    `place`: the device and dtype a file's weights are copied into as they are read."""
    spec = model if model is not None else default_model_name(task or "realsr")
    own_vae = None
    if isinstance(spec, LoadedModel):
        unet = spec
    elif str(spec) == UNTRAINED_TINY:
        unet, own_vae = make_tiny(task or "realsr")
        log(
            f"model {UNTRAINED_TINY}: a tiny network with RANDOM weights. It checks that the installation "
            "works; its output is not a restoration. Pass a trained model for real results."
        )
    else:
        unet = load_unet(_resolve(spec, "unet", models_dirs, download, progress), preset=preset, **place)
    if unet.part != "unet":
        raise InputError(f"{display_name(unet)} is a {unet.part}, not a ResShift model (UNet)")
    if preset is not None and isinstance(unet.config, UNetConfig):
        # a Distilled-ResShift preset goes where the weights take the noise map (concat or add)
        refined = follow_weights_noise_map(preset, unet.config)
        if refined != unet.preset:
            unet = dataclasses.replace(unet, preset=refined, preset_source="explicit")
    _preset_of(unet)
    return unet, own_vae


def _preset_of(unet: LoadedModel) -> DiffusionPreset:
    if unet.preset is None:
        raise InputError(f"{display_name(unet)} has no diffusion preset: name one (see `inspect --list`)")
    return unet.preset


def load_pipeline(
    *,
    model: ModelSpec = None,
    vae: ModelSpec = None,
    task: str | None = None,
    preset: str | DiffusionPreset | None = None,
    spacing: str | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "fp32",
    models_dirs: Sequence[str | Path] = (),
    download: bool = True,
    progress: ProgressCallback | None = None,
    log: Log | None = None,
    vae_hint: str = "give its VAE",
    compile: bool | CompileConfig = False,
) -> ResShiftPipeline:
    """A ready pipeline for one request.

    model: a checkpoint file, a published name (`inspect --list`), `untrained-tiny`, a
        LoadedModel, or None for the task's default. vae: the same for the VQGAN; None takes the
        model's published pair (`autoencoder_vq_f4` for unknown files); a pixel-space model takes
        none. task: realsr, bicsr, inpaint or faceir; picks the default model and must match the
        model's preset. preset: a registry preset name or a DiffusionPreset overriding the detected
        one. spacing: `published` or `trailing` (which trained steps a shorter chain keeps).
        dtype: fp32, bf16, fp16 or auto (bf16 where the device runs it natively, else fp32).
    Names are looked up in `models_dirs`, then $RESSHIFT_MODELS_DIR, ~/.cache/resshift and
    weights/; a published file that is missing is downloaded into the first of `models_dirs`
    (default: the first model folder) unless `download` is False or RESSHIFT_OFFLINE=1.
    `log(line)` hears what was loaded and any warning; `progress(done, total)` hears download
    bytes. `compile` (True or a CompileConfig) runs the networks through torch.compile
    (`compiled.py`); whether it can work here is checked before anything is loaded.
    """
    say: Log = log or (lambda _line: None)
    if task is not None and task not in TASKS:
        raise InputError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    if spacing is not None and spacing not in SPACINGS:
        raise InputError(f"unknown spacing {spacing!r}: choose one of {', '.join(SPACINGS)}")
    torch_device = device if isinstance(device, torch.device) else pick_device(device)
    if isinstance(dtype, torch.dtype):
        torch_dtype, dtype_reason = dtype, "asked for"
    else:
        torch_dtype, dtype_reason = resolve_dtype(dtype, torch_device)
    compile_config = DEFAULT_COMPILE if compile is True else compile or None
    if compile_config is not None:
        check_compile_support(torch_device, compile_config)
    # Weights read from a file are copied once, straight into the pipeline's device and dtype: a
    # float32 copy converted afterwards left 0.3 GB of freed float32 in a bf16 process (v3 + f4).
    place = {"device": torch_device, "dtype": torch_dtype}
    unet, own_vae = _load_unet(model, task, _preset_override(preset), models_dirs, download, progress, say, place)
    p = _preset_of(unet)
    if task is not None and task != p.task:
        raise InputError(
            f"task {task} was asked for but {display_name(unet)} is a {p.task} model "
            f"(preset {p.name}); choose a {task} model or preset, or leave the task out"
        )
    if spacing:
        p = dataclasses.replace(p, spacing=spacing)
        unet = dataclasses.replace(unet, preset=p)
    vae_model = _load_vae(unet, p, vae if vae is not None else own_vae, models_dirs, download, progress, place)
    pipe = ResShiftPipeline(
        unet,
        vae_model,
        device=torch_device,
        dtype=torch_dtype,
        channels_last=channels_last_for(torch_device),
        vae_hint=vae_hint,
    )
    if compile_config is not None:
        compile_pipeline(pipe, compile_config)
    say(
        f"model {display_name(unet)}: preset {p.name} ({unet.preset_source}), x{p.sf}, trained with {p.steps} steps, "
        f"samples {p.default_steps} by default; "
        f"VAE {'none (pixel-space model)' if vae_model is None else display_name(vae_model)}; "
        f"{torch_device}, {dtype_name(torch_dtype)} ({dtype_reason})"
        + ("; torch.compile: the first image compiles the networks, later ones reuse them" if compile_config else "")
    )
    return pipe


def _load_vae(
    unet: LoadedModel, preset: DiffusionPreset, vae: ModelSpec, models_dirs, download, progress, place: dict
) -> LoadedModel | None:
    if not preset.latent:
        if vae is not None:
            raise InputError(f"{display_name(unet)} is a pixel-space model: it takes no VAE; leave the VAE out")
        return None
    if isinstance(vae, LoadedModel):
        return vae
    spec = vae if vae is not None else default_vae_name(str(unet.source))
    return load_vae(_resolve(spec, "autoencoder", models_dirs, download, progress), **place)


__all__ = ["DEFAULT_VAE", "TASK_DEFAULTS", "default_model_name", "default_vae_name", "load_pipeline"]

"""`python -m resshift_core upscale`: files and folders in, restored files out."""

from __future__ import annotations

from dataclasses import replace

import sys
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from . import registry
from .checkpoints.loading import load_unet, load_vae
from .errors import ImageError, InputError
from .image_io import list_images, load_image, save_image
from .model_files import resolve_checkpoint
from .pipeline import ResShiftPipeline
from .sampler import StepInfo
from .tiny import UNTRAINED_TINY, make_tiny

IMAGE_SUFFIX = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}


def default_model_name(task: str) -> str:
    from .cli import TASK_DEFAULTS

    name = TASK_DEFAULTS[task]
    if name is not None:
        return name
    shipped = [e for e in registry.entries() if e.shipped and e.part == "unet" and not e.experimental]
    return shipped[0].name if shipped else UNTRAINED_TINY


def default_vae_name(model_path: Path) -> str:
    entry = registry.find(model_path.name)
    if entry is not None and entry.vae:
        return entry.vae
    return "autoencoder_vq_f4"


def _apply_spacing(unet, spacing: Optional[str]) -> None:
    """--spacing overrides the preset's (read off the weights or given by --preset)."""
    if spacing:
        unet.preset = replace(unet.preset, spacing=spacing)


def build_pipeline(args) -> ResShiftPipeline:
    from .cli import _torch_dtype, pick_device

    device = pick_device(args.device)
    dtype = _torch_dtype(args.dtype)
    model_name = args.model or default_model_name(args.task or "realsr")
    if model_name == UNTRAINED_TINY:
        unet, vae = make_tiny(args.task or "realsr")
        print(
            f"model {UNTRAINED_TINY}: a tiny network with RANDOM weights. It checks that the installation "
            "works; its output is not a restoration. Pass --model with a trained checkpoint for real results.",
            file=sys.stderr,
        )
        if args.preset:
            unet.preset = registry.preset(args.preset)
        _apply_spacing(unet, args.spacing)
        return ResShiftPipeline(unet, vae, device=device, dtype=dtype, channels_last=device.type != "mps")
    model_path = resolve_checkpoint(model_name, "unet")
    unet = load_unet(model_path, preset=args.preset, device=device, dtype=dtype)
    if args.task is not None and args.task != unet.preset.task:
        raise InputError(
            f"--task {args.task} but {model_path.name} is a {unet.preset.task} model "
            f"(preset {unet.preset.name}); drop --task, or choose a {args.task} model or --preset"
        )
    _apply_spacing(unet, args.spacing)
    vae, vae_name = None, "none (pixel-space model)"
    if unet.preset.latent:
        vae_path = resolve_checkpoint(args.vae or default_vae_name(model_path), "autoencoder")
        vae = load_vae(vae_path, device=device, dtype=dtype)
        vae_name = vae_path.name
    elif args.vae:
        raise InputError(f"{model_path.name} is a pixel-space model: it takes no --vae")
    print(
        f"model {model_path.name}: preset {unet.preset.name} ({unet.preset_source}), x{unet.preset.sf}, "
        f"{args.steps or unet.preset.default_steps} steps ({unet.preset.spacing} spacing); VAE {vae_name}; "
        f"{device}, {args.dtype}",
        file=sys.stderr,
    )
    return ResShiftPipeline(unet, vae, device=device, dtype=dtype, channels_last=device.type != "mps")


def output_path(src: Path, root: Optional[Path], out: Path, fmt: str, single_file: bool) -> Path:
    if single_file and out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
        return out
    suffix = src.suffix.lower() if fmt == "same" else IMAGE_SUFFIX[fmt]
    rel = src.relative_to(root) if root is not None else Path(src.name)
    return (out / rel).with_suffix(suffix)


def find_mask(mask_arg: Optional[str], src: Path) -> Optional[Path]:
    if mask_arg is None:
        return None
    mask = Path(mask_arg)
    if mask.is_file():
        return mask
    if mask.is_dir():
        for candidate in sorted(mask.glob(src.stem + ".*")):
            return candidate
        raise ImageError(f"no mask for {src.name} in {mask} (expected a file named {src.stem}.png or similar)")
    raise ImageError(f"mask not found: {mask}")


def _load_mask(path: Path, size: tuple[int, int]) -> torch.Tensor:
    m = load_image(path)
    gray = m.rgb.mean(dim=0, keepdim=True)
    if tuple(gray.shape[-2:]) != size:
        raise ImageError(f"mask {path.name} is {gray.shape[-1]}x{gray.shape[-2]} but the image is {size[1]}x{size[0]}")
    return gray[None]


def upscale_alpha(alpha: torch.Tensor, sf: int) -> torch.Tensor:
    """The network restores RGB only; transparency is carried along by bicubic upsampling."""
    if sf == 1:
        return alpha
    return F.interpolate(alpha[None], scale_factor=sf, mode="bicubic", align_corners=False)[0].clamp(0, 1)


def to_gray(rgb: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype).view(3, 1, 1)
    return (rgb * weights).sum(dim=0, keepdim=True).expand(3, -1, -1)


def run_upscale(args) -> int:
    if args.task == "inpaint" and not args.mask:  # (a model's own task is checked once it is loaded)
        raise InputError("--task inpaint needs --mask (a mask file or a folder of masks; white = fill in)")
    inputs = [Path(p) for p in args.inputs]
    files = list_images(inputs)
    if not files:
        raise ImageError(f"no images found in {', '.join(map(str, inputs))}")
    single = len(inputs) == 1 and inputs[0].is_file()
    root = inputs[0] if len(inputs) == 1 and inputs[0].is_dir() else None
    out = Path(args.output)
    pipe = build_pipeline(args)
    steps = args.steps or pipe.preset.default_steps
    tiling = pipe.tiling(args.tile, args.tile_overlap, args.vae_tile)
    progress = None
    if not args.no_progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(files) * steps, unit="step", file=sys.stderr)

    def on_step(info: StepInfo) -> None:
        if progress is not None:
            progress.update(1)

    failures = 0
    try:
        for i, src in enumerate(files):
            dst = output_path(src, root, out, args.format, single)
            if args.skip_existing and dst.exists():
                if progress is not None:
                    progress.update(steps)
                continue
            try:
                img = load_image(src)
                mask_path = find_mask(args.mask, src)
                mask = _load_mask(mask_path, tuple(img.rgb.shape[-2:])) if mask_path else None
                result = pipe.restore(img.rgb[None], mask, seeds=[args.seed], steps=args.steps,
                                      callback=on_step, tiling=tiling)[0].cpu()
                if img.grayscale:
                    result = to_gray(result)
                alpha = upscale_alpha(img.alpha, pipe.sf) if img.alpha is not None else None
                if alpha is not None and dst.suffix.lower() in (".jpg", ".jpeg"):
                    dst = dst.with_suffix(".png")  # JPEG cannot hold transparency
                save_image(dst, result, alpha, bit_depth=img.bit_depth if dst.suffix.lower() == ".png" else 8,
                           grayscale=img.grayscale, icc_profile=img.icc_profile)
                if progress is not None:
                    progress.write(f"{src} -> {dst}")
            except (ImageError, InputError) as exc:  # one bad file does not stop the batch
                failures += 1
                msg = f"skipped {src}: {exc}"
                progress.write(msg) if progress is not None else print(msg, file=sys.stderr)
    finally:
        if progress is not None:
            progress.close()
    if failures:
        print(f"{failures} of {len(files)} images failed (see above)", file=sys.stderr)
        return 1
    return 0

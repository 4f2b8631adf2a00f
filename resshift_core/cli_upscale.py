"""`python -m resshift_core upscale`: files and folders in, restored files out."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import ImageError, InputError
from .image_io import LoadedImage, list_images, load_image, save_image
from .inpaint_masks import LUMA
from .pipeline import ResShiftPipeline
from .request import load_pipeline
from .sampler import StepInfo

IMAGE_SUFFIX = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _download_bar():
    """Bytes of a checkpoint download, on stderr."""
    from tqdm.auto import tqdm

    state: dict = {}

    def progress(done: int, total: int | None) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, unit="B", unit_scale=True, desc="download", file=sys.stderr)
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return progress


def build_pipeline(args) -> ResShiftPipeline:
    """The request the options describe."""
    return load_pipeline(
        model=args.model,
        vae=args.vae,
        task=args.task,
        preset=args.preset,
        spacing=args.spacing,
        device=args.device,
        dtype=args.dtype,
        download=not args.no_download,
        progress=None if args.no_progress else _download_bar(),
        log=_say,
        vae_hint="pass --vae",
    )


def output_path(src: Path, root: Path | None, out: Path, fmt: str, single_file: bool) -> Path:
    if single_file and out.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"):
        return out
    suffix = src.suffix.lower() if fmt == "same" else IMAGE_SUFFIX[fmt]
    rel = src.relative_to(root) if root is not None else Path(src.name)
    return (out / rel).with_suffix(suffix)


def find_mask(mask_arg: str | None, src: Path) -> Path | None:
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


def mask_tensor(mask: LoadedImage) -> torch.Tensor:
    """A mask file as the pipeline takes it (1 x C x H x W; its alpha as a last channel): the
    pipeline's one rule (inpaint_masks) reduces, resizes and binarises it."""
    channels = [mask.rgb] if mask.alpha is None else [mask.rgb, mask.alpha]
    return torch.cat(channels)[None]


def upscale_alpha(alpha: torch.Tensor, sf: int) -> torch.Tensor:
    """The network restores RGB only; transparency is carried along by bicubic upsampling."""
    if sf == 1:
        return alpha
    return F.interpolate(alpha[None], scale_factor=sf, mode="bicubic", align_corners=False)[0].clamp(0, 1)


def to_gray(rgb: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, dtype=rgb.dtype).view(3, 1, 1)
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
    steps = pipe.resolve_steps(args.steps)
    pipe.check_seeds([args.seed], 1)
    _say(f"sampling {steps} steps ({pipe.preset.spacing} spacing), colour fix {args.color_fix}")
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
        for src in files:
            dst = output_path(src, root, out, args.format, single)
            if args.skip_existing and dst.exists():
                if progress is not None:
                    progress.update(steps)
                continue
            try:
                img = load_image(src)
                mask_path = find_mask(args.mask, src)
                mask = mask_tensor(load_image(mask_path)) if mask_path else None
                result = pipe.restore(
                    img.rgb[None],
                    mask,
                    seeds=[args.seed],
                    steps=args.steps,
                    callback=on_step,
                    tiling=tiling,
                    color_fix=args.color_fix,
                )[0].cpu()
                if img.grayscale:
                    result = to_gray(result)
                alpha = upscale_alpha(img.alpha, pipe.sf) if img.alpha is not None else None
                if alpha is not None and dst.suffix.lower() in (".jpg", ".jpeg"):
                    dst = dst.with_suffix(".png")  # JPEG cannot hold transparency
                save_image(
                    dst,
                    result,
                    alpha,
                    bit_depth=img.bit_depth if dst.suffix.lower() == ".png" else 8,
                    grayscale=img.grayscale,
                    icc_profile=img.icc_profile,
                )
                if progress is not None:
                    progress.write(f"{src} -> {dst}", file=sys.stderr)
            except (ImageError, InputError) as exc:  # one bad file does not stop the batch
                failures += 1
                msg = f"skipped {src}: {exc}"
                if progress is not None:
                    progress.write(msg, file=sys.stderr)
                else:
                    _say(msg)
    finally:
        if progress is not None:
            progress.close()
    if failures:
        print(f"{failures} of {len(files)} images failed (see above)", file=sys.stderr)
        return 1
    return 0

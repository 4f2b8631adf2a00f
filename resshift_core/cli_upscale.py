"""`python -m resshift_core upscale`: files and folders in, restored files out."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from .allocator import release_free_memory, releasing_between
from .cli_outputs import inputs_outside, is_complete_output, oriented_size, plan_outputs
from .cli_shard import Shard, Tally
from .errors import ImageError, InputError
from .image_io import LoadedImage, list_images, load_image, save_image_bands
from .memory_estimate import (
    available_memory_bytes,
    how_to_lower,
    memory_model,
    network_bytes,
    resident_memory_bytes,
    too_large_message,
)
from .pipeline import ResShiftPipeline
from .request import load_pipeline
from .request_checks import check_seeds, check_tile_sizes
from .row_bands import bicubic_rows
from .sampler import StepInfo


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


def _silent(line: str) -> None:
    pass


def build_pipeline(args, device=None, speaks: bool = True) -> ResShiftPipeline:
    """The request the options describe (on `device`, where a torchrun rank has its own);
    `speaks`: whether its lines (the model, the download bar) are printed."""
    quiet = args.no_progress or not speaks
    return load_pipeline(
        model=args.model,
        vae=args.vae,
        task=args.task,
        preset=args.preset,
        spacing=args.spacing,
        device=args.device if device is None else device,
        dtype=args.dtype,
        download=not args.no_download,
        progress=None if quiet else _download_bar(),
        log=_say if speaks else _silent,
        vae_hint="pass --vae",
        compile=args.compile,
    )


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


def alpha_band_source(alpha: torch.Tensor, sf: int):
    """Rows of the upscaled alpha (1 x h x W) for `save_image_bands`: the network restores RGB
    only; transparency is carried along by bicubic upsampling, a band at a time."""

    def rows(first: int, stop: int) -> torch.Tensor:
        return bicubic_rows(alpha[None], sf, first, stop)[0].clamp(0, 1)

    return rows


def _complete_earlier_output(src: Path, dst: Path, sf: int) -> bool:
    """--skip-existing: an earlier result counts only if it is whole and sf x the input's size
    (for a JPEG target, also its PNG form, written when the input had transparency)."""
    size = oriented_size(src)
    expected = None if size is None else (size[0] * sf, size[1] * sf)
    candidates = [dst] + ([dst.with_suffix(".png")] if dst.suffix.lower() in (".jpg", ".jpeg") else [])
    return any(is_complete_output(c, expected) for c in candidates)


def run_upscale(args, shard: Shard | None = None) -> int:
    shard = shard or Shard()  # alone unless torchrun started several (cli_shard.run_sharded)
    if args.task == "inpaint" and not args.mask:  # (a model's own task is checked once it is loaded)
        raise InputError("--task inpaint needs --mask (a mask file or a folder of masks; white = fill in)")
    inputs = [Path(p) for p in args.inputs]
    files = inputs_outside(list_images(inputs), inputs, args.output)
    if not files:
        raise ImageError(f"no images found in {', '.join(map(str, inputs))}")
    plan = plan_outputs(files, inputs, args.output, args.format)  # refuses losses before any work
    check_seeds([args.seed], 1)  # what needs no model is checked before one is loaded
    check_tile_sizes(tile=args.tile, overlap=args.tile_overlap, vae_tile=args.vae_tile)
    mine = shard.share(plan)  # every rank planned the same outputs; this one does its share
    pipe = shard.load_in_turn(lambda speaks: build_pipeline(args, shard.device(args.device), speaks))
    steps = pipe.resolve_steps(args.steps)
    if shard.ranks.main:
        _say(f"sampling {steps} steps ({pipe.preset.spacing} spacing), colour fix {args.color_fix}")
    tiling = pipe.tiling(args.tile, args.tile_overlap, args.vae_tile)
    streams = pipe.streams_chain(steps)
    memory = memory_model(pipe.pixel_space, streams, args.color_fix)
    lower_memory = how_to_lower(pipe.pixel_space, streams, args.color_fix)
    networks = network_bytes(pipe.weight_bytes, pipe.largest_call_bytes(tiling), pipe.device.type == "cpu")
    progress = None if args.no_progress else shard.progress_bar(len(files) * steps)  # over all ranks

    def on_step(info: StepInfo) -> None:
        release_free_memory()  # what the step's tiles freed, before the next step or the decoder
        if progress is not None:
            progress.update(1)

    def tell(line: str) -> None:  # stderr, through the bar when there is one
        if progress is not None:
            progress.write(line, file=sys.stderr)
        else:
            _say(line)

    failures = skipped = 0
    try:
        for item in mine:
            src, dst = item.source, item.target
            if args.skip_existing and _complete_earlier_output(src, dst, pipe.sf):
                if progress is not None:
                    progress.update(steps)
                skipped += 1
                continue
            try:
                img = load_image(src)
                too_large = too_large_message(
                    str(src),
                    img.width,
                    img.height,
                    pipe.sf,
                    memory,
                    available_memory_bytes(),
                    lower_memory,
                    networks=networks,
                    resident=resident_memory_bytes(),
                )
                if too_large:
                    raise ImageError(too_large)
                if img.frames > 1:
                    tell(f"note: {src} is animated ({img.frames} frames): only its first frame is restored")
                mask_path = find_mask(args.mask, src)
                mask = mask_tensor(load_image(mask_path)) if mask_path else None
                bands = pipe.restore_bands(
                    img.rgb[None],
                    mask,
                    seeds=[args.seed],
                    steps=args.steps,
                    callback=on_step,
                    tiling=tiling,
                    color_fix=args.color_fix,
                )
                alpha_rows = None if img.alpha is None else alpha_band_source(img.alpha, pipe.sf)
                if alpha_rows is not None and dst.suffix.lower() in (".jpg", ".jpeg"):
                    tell(f"note: {src} has transparency, which JPEG cannot hold: writing {dst.with_suffix('.png')}")
                    dst = dst.with_suffix(".png")
                bits = img.bit_depth if dst.suffix.lower() == ".png" else 8
                if img.bit_depth > bits:
                    tell(
                        f"note: {src} has {img.bit_depth} bits per sample; {dst.name} holds 8 "
                        "(use --format png to keep them)"
                    )
                # The result goes to the file a band of rows at a time as it is computed (PNG), so
                # a large output never exists whole in floating point; what the band's work freed
                # goes back to the system before the next (see allocator).
                save_image_bands(
                    dst,
                    img.height * pipe.sf,
                    img.width * pipe.sf,
                    ((first, rows[0]) for first, rows in releasing_between(bands)),
                    alpha_rows,
                    bit_depth=bits,
                    grayscale=img.grayscale,
                    icc_profile=img.icc_profile,
                )
                if progress is not None:
                    progress.write(f"{src} -> {dst}", file=sys.stderr)
            except (ImageError, InputError) as exc:  # one bad file does not stop the batch
                failures += 1
                tell(f"skipped {src}: {exc}")
    finally:
        if progress is not None:
            progress.close()
    return shard.finish(Tally(len(mine) - skipped - failures, skipped, failures), len(files))

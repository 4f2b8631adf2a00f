"""PSNR / SSIM (Y channel) of a UNet on a paired validation folder, against bicubic upsampling.

    python -m resshift_core.train.evaluate weights/resshift_tiny_realsr_x4.safetensors \
        --val-dir ../shared/data/Val_SR --seed 0 [--vae VQGAN] [--crop-border 0] [--json out.json]

Each LR image is restored alone with seed `--seed` (the pipeline's per-image noise), on the CPU
unless --device says otherwise; the bicubic baseline is torch's bicubic upsampling of the same LR
image (what the chain starts from), clamped to [0, 1]. Both are quantised to 8 bits before scoring.
`evaluate()` also takes a pipeline in memory and loaded pairs: training validates through it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..checkpoints.loading import load_unet, load_vae
from ..pipeline import ResShiftPipeline
from .data import load_val_pairs
from .metrics import psnr_y, ssim_y

Pairs = Sequence[tuple[str, torch.Tensor, torch.Tensor]]  # (name, lq, gt), 3HW in [0, 1]


def evaluate(
    model: str | Path | ResShiftPipeline,
    val: str | Path | Pairs,
    *,
    vae_path: str | None = None,
    seed: int = 0,
    crop_border: int = 0,
    device: str = "cpu",
    max_images: int = 0,
    threads: int = 0,
    steps: int | None = None,
) -> dict:
    """Scores of `model` (a UNet file, or a pipeline) on `val` (a folder with lq/ and gt/, or pairs).

    `vae_path` and `device` only apply to a UNet file; `max_images` only to a folder."""
    if threads:
        torch.set_num_threads(threads)
    if isinstance(model, ResShiftPipeline):
        pipe, source = model, model.unet.source
    else:
        unet = load_unet(model, device=device)
        vae = load_vae(vae_path, device=device) if vae_path else None
        pipe, source = ResShiftPipeline(unet, vae, device=device), str(model)
    pairs = load_val_pairs(str(val), max_images) if isinstance(val, (str, Path)) else list(val)
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    for name, lq, gt in pairs:
        out = pipe.restore(lq[None], seeds=[seed], steps=steps).cpu()
        bic = F.interpolate(lq[None].float(), size=gt.shape[-2:], mode="bicubic").clamp(0, 1)
        rows.append(
            {
                "name": name,
                "psnr": float(psnr_y(out, gt[None], crop_border)),
                "ssim": float(ssim_y(out, gt[None], crop_border)),
                "bicubic_psnr": float(psnr_y(bic, gt[None], crop_border)),
                "bicubic_ssim": float(ssim_y(bic, gt[None], crop_border)),
            }
        )
    if not rows:
        raise ValueError("no validation pairs to evaluate on")

    def mean(key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    return {
        "model": source,
        "val_dir": str(val) if isinstance(val, (str, Path)) else "<memory>",
        "images": len(rows),
        "seed": seed,
        "crop_border": crop_border,
        "steps": steps or pipe.preset.default_steps,
        "seconds": time.time() - t0,
        "psnr_y": mean("psnr"),
        "ssim_y": mean("ssim"),
        "bicubic_psnr_y": mean("bicubic_psnr"),
        "bicubic_ssim_y": mean("bicubic_ssim"),
        "per_image": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m resshift_core.train.evaluate", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("unet", help="UNet checkpoint")
    p.add_argument("--val-dir", required=True, help="folder with lq/ and gt/ subfolders")
    p.add_argument("--vae", default=None, help="VQGAN checkpoint (latent models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop-border", type=int, default=0, help="pixels cropped from each border before scoring")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-images", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the preset's)")
    p.add_argument("--json", default=None, help="also write the full result (per image) here")
    a = p.parse_args(argv)
    res = evaluate(
        a.unet,
        a.val_dir,
        vae_path=a.vae,
        seed=a.seed,
        crop_border=a.crop_border,
        device=a.device,
        max_images=a.max_images,
        threads=a.threads,
        steps=a.steps,
    )
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=1)
    print(
        f"{res['images']} images, {res['steps']} steps, seed {res['seed']}, crop border {res['crop_border']}, "
        f"{res['seconds']:.0f} s"
    )
    print(f"ours    : PSNR-Y {res['psnr_y']:.3f} dB  SSIM-Y {res['ssim_y']:.4f}")
    print(f"bicubic : PSNR-Y {res['bicubic_psnr_y']:.3f} dB  SSIM-Y {res['bicubic_ssim_y']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Time the published ResShift code and ours in one process, on the same weights and noise.

    python scripts/bench_published.py --published /path/to/zsyOAOA/ResShift [--size 64]
        [--dtype fp32 --dtype bf16] [--repeat 3] [--device cpu] [--json]

`--published` is a checkout of github.com/zsyOAOA/ResShift (nothing of it is copied here; its
modules are imported from that folder). The v3 UNet (`realsr_swinunet_realesrgan256_journal`)
and the f4 VQGAN are built by the published constructors with seeded random weights, written to
safetensors files and loaded by our `load_pipeline` from those files, so both sides compute the
same function. The published side runs `GaussianDiffusion.p_sample_loop` (bicubic x4, VQGAN
encode, 4 steps, decode) in float32 as its own sampler does; ours runs `restore` untiled with
the same noise draws. Runs are interleaved (published, then each of our dtypes) and the best of
`--repeat` rounds after a warm-up round counts. Printed: seconds, speed-up against the
published code, PSNR of each output against the published one (parity: fp32 is ~110 dB), and on
CUDA each run's peak allocated memory.

timm (which the published Swin code imports for DropPath, to_2tuple and trunc_normal_) needs
torchvision; a three-name stand-in is installed when timm is missing (DropPath is the identity
at drop rate 0, which the published configs use).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

from resshift_core import registry
from resshift_core.request import load_pipeline
from resshift_core.sampler import ExplicitNoise

STEPS = 4  # the v3 (journal) settings below
# The published constructor arguments come from our registry's layouts (the published yamls'
# `model.params` and `autoencoder.params`); the diffusion settings are that yaml's own.
UNET_ENTRY, VAE_ENTRY = "resshift_realsrx4_s4_v3", "autoencoder_vq_f4"
DIFFUSION_ARGS = {
    "sf": 4,
    "schedule_name": "exponential",
    "schedule_kwargs": {"power": 0.3},
    "etas_end": 0.99,
    "steps": STEPS,
    "min_noise_level": 0.2,
    "kappa": 2.0,
    "weighted_mse": False,
    "predict_type": "xstart",
    "timestep_respacing": None,
    "scale_factor": 1.0,
    "normalize_input": True,
    "latent_flag": True,
}


def _stand_in_for_timm() -> None:
    try:
        import timm.models.layers  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        layers = types.ModuleType("timm.models.layers")

        class DropPath(torch.nn.Identity):
            def __init__(self, *args, **kwargs):
                super().__init__()

        layers.DropPath = DropPath  # type: ignore[attr-defined]
        layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)  # type: ignore[attr-defined]
        layers.trunc_normal_ = torch.nn.init.trunc_normal_  # type: ignore[attr-defined]
        for name in ("timm", "timm.models"):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules["timm.models.layers"] = layers


def _published_arguments(name: str) -> dict:
    entry = registry.find(name)
    if entry is None or entry.architecture is None:
        raise SystemExit(f"error: weights/registry.json lacks the layout of {name}")
    return copy.deepcopy(entry.architecture)


def _randomise(module: torch.nn.Module) -> None:
    """Every tensor random (the published init zeroes the out-convs, so the output would be flat)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:
                p.normal_(0, 1.0 / math.sqrt(p[0].numel()))
            elif name.endswith("bias"):
                p.normal_(0, 0.02)
            else:
                p.uniform_(0.8, 1.2)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _timed(fn, device: torch.device):
    """fn's output, its seconds, and on CUDA its peak allocated memory in MiB (None elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    out = fn()
    peak = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    return out, time.perf_counter() - start, peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--published", required=True, type=Path, help="a checkout of zsyOAOA/ResShift")
    parser.add_argument("--size", type=int, default=64, help="LR side (output is 4x); default 64")
    parser.add_argument(
        "--dtype", action="append", choices=("fp32", "bf16", "fp16"), help="ours; default fp32 and bf16"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.published / "models" / "gaussian_diffusion.py").is_file():
        print(
            f"error: {args.published} is not a checkout of zsyOAOA/ResShift (no models/gaussian_diffusion.py)",
            file=sys.stderr,
        )
        return 2
    if args.size < 8 or args.size % 8 or args.repeat < 1:
        print("error: --size must be a multiple of 8 (at least 8) and --repeat at least 1", file=sys.stderr)
        return 2
    dtypes = args.dtype or ["fp32", "bf16"]
    device = torch.device(args.device)

    _stand_in_for_timm()
    sys.path.insert(0, str(args.published.resolve()))
    # The published code, from --published (untyped, outside this repository).
    try:
        from ldm.models.autoencoder import VQModelTorch  # type: ignore[import-not-found]
        from models.script_util import create_gaussian_diffusion  # type: ignore[import-not-found]
        from models.unet import UNetModelSwin  # type: ignore[import-not-found]
    except ImportError as exc:
        print(
            f"error: the published code in {args.published} does not import ({exc}); give a checkout of "
            "zsyOAOA/ResShift (3ce1d81 was tested) and install what it names",
            file=sys.stderr,
        )
        return 2

    unet_args, vae_args = (_published_arguments(name) for name in (UNET_ENTRY, VAE_ENTRY))
    torch.manual_seed(0)
    unet, vae = UNetModelSwin(**unet_args).eval(), VQModelTorch(**vae_args).eval()
    _randomise(unet)
    diffusion = create_gaussian_diffusion(**DIFFUSION_ARGS)

    with tempfile.TemporaryDirectory() as tmp:
        files = {name: str(Path(tmp) / f"{name}.safetensors") for name in ("unet", "vae")}
        for name, module in (("unet", unet), ("vae", vae)):
            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, files[name])
        pipes = {
            d: load_pipeline(model=files["unet"], vae=files["vae"], dtype=d, device=device, download=False)
            for d in dtypes
        }
    unet, vae = unet.to(device), vae.to(device)

    lr = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    latent = (1, 3, args.size, args.size)  # f4 latent of the x4 bicubic upsample

    def published():
        y0 = (lr * 2 - 1).to(device)
        torch.manual_seed(7)  # its prior and step draws, in the order p_sample_loop makes them
        with torch.no_grad():
            out = diffusion.p_sample_loop(
                y=y0, model=unet, first_stage_model=vae, clip_denoised=False, model_kwargs={"lq": y0}
            )
        return ((out.clamp(-1, 1) + 1) / 2).cpu()

    def ours(dtype):
        torch.manual_seed(7)
        draws = [torch.randn(latent) for _ in range(STEPS + 1)]
        return pipes[dtype].restore(lr, noise=ExplicitNoise(draws[0], draws[1:]), tiling=None).cpu()

    runs: dict[str, Callable[[], torch.Tensor]] = {"published fp32": published}
    runs.update({f"ours {d}": functools.partial(ours, d) for d in dtypes})
    best: dict[str, float] = {}
    peaks: dict[str, float | None] = {}
    outputs: dict[str, torch.Tensor] = {}
    for round_ in range(args.repeat + 1):  # round 0 warms up (kernel choice, allocator)
        for name, fn in runs.items():
            outputs[name], seconds, peak = _timed(fn, device)
            if round_:
                best[name] = min(best.get(name, math.inf), seconds)
                peaks[name] = peak  # the same every round: the work does not change
    base = best["published fp32"]
    rows = [
        {
            "run": name,
            "seconds": round(best[name], 3),
            "speedup": round(base / best[name], 2),
            "psnr_vs_published_db": None
            if name == "published fp32"
            else round(_psnr(outputs[name], outputs["published fp32"]), 1),
            "peak_vram_mb": _rounded(peaks[name]),
        }
        for name in runs
    ]
    header = {
        "size": f"{args.size}->{4 * args.size}",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "repeat": args.repeat,
    }
    if args.json:
        print(json.dumps({**header, "runs": rows}))
    else:
        print(", ".join(f"{k} {v}" for k, v in header.items()))
        for row in rows:
            psnr = "" if row["psnr_vs_published_db"] is None else f"   {row['psnr_vs_published_db']} dB vs published"
            vram = "" if row["peak_vram_mb"] is None else f"   peak {row['peak_vram_mb']:.0f} MiB"
            print(f"{row['run']:<16} {row['seconds']:8.3f} s   {row['speedup']:5.2f}x{psnr}{vram}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

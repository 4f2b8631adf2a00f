"""`python -m resshift_core bench`: time and size of the whole chain with random weights.

Each setting runs in a fresh subprocess, so its peak memory is its own: on the CPU the peak
resident set size of that process (weights included), on CUDA torch's peak allocation.
FLOPs are counted once per setting with torch's FlopCounterMode (convolutions, matmuls,
attention), not estimated; so are the network calls (sampling steps) the chain made. The
phases (encode, sample, decode) are timed in the best run by wrapping the pipeline's own steps.

A machine line comes first: the CPU's flags that decide its kernels and the ceiling each
setting's GFLOP/s compares with, one channels-last 3x3 convolution's GFLOP/s in fp32 and bf16
(the convolutions are most of the chain's work), measured in a fresh process too.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import devices, registry
from .checkpoints.loading import LoadedModel
from .devices import dtype_from_name
from .models.unet import ResShiftUNet, UNetConfig
from .models.vqgan import VQGAN, VQGANConfig
from .pipeline import ResShiftPipeline
from .request import load_pipeline
from .sampler import StepInfo

F4_VAE = "autoencoder_vq_f4"


class RandomBuild(NamedTuple):
    """A published architecture with seeded random weights (no download): what bench can time
    without any checkpoint. The one-step students share ResShift v1's UNet; they differ in a
    noise-map input and in how they are sampled (their preset)."""

    unet: str  # registry entry whose architecture is built
    preset: str  # registry preset the UNet is sampled with
    noise_channels: int = 0  # a concatenated noise-map input (RSD, Distilled-ResShift)
    what: str = ""


RANDOM_V3 = "random-v3"
RANDOM_BUILDS = {
    RANDOM_V3: RandomBuild("resshift_realsrx4_s4_v3", "realsr_x4_s4", 0, "ResShift v3, 4 steps"),
    "random-sinsr": RandomBuild("resshift_realsrx4_s15_v1", "sinsr_x4", 0, "SinSR (v1 UNet), 1 step"),
    "random-rsd": RandomBuild("resshift_realsrx4_s15_v1", "rsd_x4", 1, "RSD (v1 UNet + noise map), 1 step"),
    "random-distilled": RandomBuild(
        "resshift_realsrx4_s15_v1", "distilled_x4", 1, "Distilled-ResShift x4 (v1 UNet + noise map), 1 step"
    ),
}


def _linear_flops(x_shape, w_shape, *_args, **_kwargs) -> int:
    return 2 * math.prod(x_shape[:-1]) * w_shape[0] * w_shape[1]


def _cpu_attention_flops(q_shape, k_shape, v_shape, *_args, **_kwargs) -> int:
    *batch, queries, depth = q_shape
    return 4 * math.prod(batch) * queries * k_shape[-2] * depth  # q k^T and probs v


def _extra_flop_formulas() -> dict:
    """Kernels FlopCounterMode does not know: oneDNN's float32 linear (cpu_matmul) and torch's
    CPU flash attention. Counted like their plain forms, so the work is the same whatever the
    kernel and the GFLOP/s compare."""
    formulas: dict = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}
    onednn = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if onednn is not None:
        formulas[onednn] = _linear_flops
    return formulas


def build_random_pipeline(
    device, dtype, seed: int = 0, model: str = RANDOM_V3, compile: bool = False
) -> ResShiftPipeline:
    """A random build (RANDOM_BUILDS) with the f4 VQGAN, from the registry's layouts with seeded
    random weights, through the same request API as every other front-end."""
    build = RANDOM_BUILDS[model]
    unet_entry, vae_entry = registry.find(build.unet), registry.find(F4_VAE)
    if unet_entry is None or vae_entry is None or unet_entry.architecture is None or vae_entry.architecture is None:
        raise RuntimeError(f"weights/registry.json lacks the layouts of {build.unet} and {F4_VAE}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ucfg = UNetConfig.from_published(unet_entry.architecture, noise_channels=build.noise_channels)
        vcfg = VQGANConfig.from_published(vae_entry.architecture)
        unet = ResShiftUNet(ucfg).eval().requires_grad_(False)
        vae = VQGAN(vcfg).eval().requires_grad_(False)
    n_u = sum(p.numel() for p in unet.parameters())
    n_v = sum(p.numel() for p in vae.parameters())
    return load_pipeline(
        model=LoadedModel(
            "unet", unet, ucfg, registry.preset(build.preset), "registry", "<random>", n_u, registry_name=model
        ),
        vae=LoadedModel("autoencoder", vae, vcfg, None, "", "<random>", n_v, registry_name=F4_VAE),
        device=device,
        dtype=dtype,
        compile=compile,
    )


def make_pipeline(model: str, device, dtype, compile: bool = False) -> ResShiftPipeline:
    if model in RANDOM_BUILDS:
        return build_random_pipeline(device, dtype, model=model, compile=compile)
    return load_pipeline(model=model, device=device, dtype=dtype, download=False, compile=compile)


# Phases of a restore, as the pipeline's methods that run them (timed by wrapping each).
PHASES = {"encode": "encode", "sample": "sample", "decode": "decode_bands"}
# /proc/cpuinfo flags that decide which kernels oneDNN can use.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
# The ceiling's convolution: 3x3, 256 -> 256 channels on a 64x64 map (4.8 GFLOP), a typical
# layer of both networks.
CEILING_SHAPE = (1, 256, 64, 64)


def _timed_phases(pipe: ResShiftPipeline, device) -> dict[str, float]:
    """Wrap the pipeline's phase methods on this instance; the dict fills with their seconds."""
    seconds: dict[str, float] = {}
    for phase, method in PHASES.items():
        inner = getattr(pipe, method, None)
        if inner is None:
            continue

        def add(phase: str, t0: float) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - t0

        def banded(bands, phase: str):
            """A phase that yields row bands works as they are taken: time each resumption."""
            while True:
                t0 = time.perf_counter()
                try:
                    band = next(bands)
                except StopIteration:
                    add(phase, t0)
                    return
                add(phase, t0)
                yield band

        def timed(*args, _inner=inner, _phase=phase, **kwargs):
            t0 = time.perf_counter()
            out = _inner(*args, **kwargs)
            add(_phase, t0)
            return banded(out, _phase) if isinstance(out, Iterator) else out

        setattr(pipe, method, timed)
    return seconds


def cpu_flags() -> list[str]:
    """The flags of CPU_FLAGS this CPU has (devices.cpu_flags reads them)."""
    flags = devices.cpu_flags()
    return [f for f in CPU_FLAGS if f in flags]


def conv_ceiling(device, dtype: torch.dtype, repeat: int = 5) -> float:
    """GFLOP/s of one channels-last 3x3 convolution (CEILING_SHAPE), the best of `repeat` runs."""
    n, c, h, w = CEILING_SHAPE
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(CEILING_SHAPE, generator=gen).to(device=device, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(c, c, 3, 3, generator=gen) / (3 * c**0.5)).to(device=device, dtype=dtype)
    weight = weight.contiguous(memory_format=torch.channels_last)
    flops = 2 * n * c * c * 9 * h * w
    best = math.inf
    with torch.inference_mode():
        for i in range(repeat + 1):  # the first run chooses the kernel
            t0 = time.perf_counter()
            torch.nn.functional.conv2d(x, weight, padding=1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                best = min(best, time.perf_counter() - t0)
    return flops / 1e9 / best


def machine(setting: dict) -> dict:
    """The machine line: device, threads, CPU flags and the measured convolution ceilings."""
    if setting.get("threads"):
        torch.set_num_threads(int(setting["threads"]))
    device = torch.device(setting["device"])
    row: dict = {"machine": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}
    if device.type == "cpu":
        row["cpu_flags"] = cpu_flags()
    elif device.type == "cuda":
        row["gpu"] = torch.cuda.get_device_name(device)
    for name in setting.get("dtypes") or ["fp32", "bf16"]:
        row[f"conv_gflop_per_s_{name}"] = round(conv_ceiling(device, dtype_from_name(name)), 1)
    return row


def _peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(setting: dict) -> dict:
    """Measure one (size, dtype, device) setting in this process."""
    if setting.get("threads"):
        torch.set_num_threads(int(setting["threads"]))
    device = torch.device(setting["device"])
    dtype = dtype_from_name(setting["dtype"])
    size = int(setting["size"])
    model = setting.get("model") or RANDOM_V3
    compiled = bool(setting.get("compile"))
    pipe = make_pipeline(model, device, dtype, compiled)
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, size, size, generator=gen)

    tiling = pipe.tiling()

    def run(callback=None):
        out = pipe.restore(image, seeds=[0], tiling=tiling, callback=callback)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    # The warm-up run (allocator, oneDNN/cuDNN kernel choice) also counts the FLOPs and the
    # sampling steps the chain ran (one network call each). With repeat 0 it is also the timed
    # run (for sizes that take many minutes on a CPU).
    repeat = int(setting.get("repeat", 3))
    steps: list[int] = []
    first_run = None
    if compiled:  # the one-time compile, timed on its own (FLOPs are counted by the next run)
        t0 = time.perf_counter()
        run()
        first_run = time.perf_counter() - t0

    def count_step(info: StepInfo) -> None:
        steps.append(info.timestep)

    t0 = time.perf_counter()
    with FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas()) as counter:
        out = run(count_step)
    times = [time.perf_counter() - t0] if repeat == 0 else []
    flops = counter.get_total_flops()
    if device.type == "cuda" and repeat:
        torch.cuda.reset_peak_memory_stats(device)
    phases: dict[str, float] = {}
    for _ in range(repeat):
        seconds_of = _timed_phases(pipe, device)
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
        if times[-1] == min(times):
            phases = dict(seconds_of)
        for method in PHASES.values():  # unwrap for the next run
            pipe.__dict__.pop(method, None)
    seconds = min(times)
    out_pixels = (size * pipe.sf) ** 2
    result = {
        "size": f"{size}->{size * pipe.sf}",
        "dtype": setting["dtype"],
        "device": str(device),
        "model": model,
        "compile": compiled,
        "steps": len(steps),
        "timesteps": [int(t) for t in steps],
        "seconds": round(seconds, 3),
        "gflops": round(flops / 1e9, 1),
        "gflop_per_s": round(flops / 1e9 / seconds, 1),
        "mp_per_s": round(out_pixels / 1e6 / seconds, 4),
        "us_per_px": round(seconds / out_pixels * 1e6, 3),
        "peak_mb": round(_peak_mb(device), 1),
        **{f"{phase}_s": round(t, 3) for phase, t in phases.items()},
        "threads": torch.get_num_threads(),
        "tile": tiling.tile,
        "vae_tile": tiling.vae_tile,
        "tile_batch": tiling.batch,
        "vae_tile_batch": tiling.vae_batch,
    }
    if first_run is not None:
        result["first_run_seconds"] = round(first_run, 3)  # compile included
    if (setting["dtype"] != "fp32" or compiled) and size <= 64:
        # Fidelity of the fast path (a half dtype, a compiled graph): the same weights and noise,
        # eager in float32.
        ref_pipe = make_pipeline(model, device, torch.float32)
        ref = ref_pipe.restore(image, seeds=[0], tiling=tiling)
        mse = torch.mean((out.float().cpu() - ref.float().cpu()) ** 2).item()
        result["psnr_vs_fp32_db"] = round(10 * math.log10(1.0 / max(mse, 1e-12)), 2)
    return result


def run_bench(args) -> int:
    devices = args.device or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    dtypes = args.dtype or ["fp32", "bf16"]
    models = getattr(args, "model", None) or [RANDOM_V3]
    rows = []
    for device in devices:
        line = measure_in_subprocess({"machine": True, "device": device, "threads": args.threads, "dtypes": dtypes})
        if args.json:
            print(json.dumps(line), flush=True)
        else:
            _print_machine(line)
        # 512->2048 takes over 20 minutes on a 2-core CPU: there it runs only when asked for.
        sizes = args.size or ([64, 256, 512] if device.startswith("cuda") else [64, 256])
        for size in sizes:
            for dtype in dtypes:
                for model in models:  # side by side at one setting: the rows compare the models
                    setting = {
                        "device": device,
                        "dtype": dtype,
                        "size": size,
                        "repeat": args.repeat,
                        "threads": args.threads,
                        "model": model,
                        "compile": bool(getattr(args, "compile", False)),
                    }
                    row = measure_in_subprocess(setting)
                    rows.append(row)
                    if args.json:
                        print(json.dumps(row), flush=True)
                    else:
                        _print_row(row)
    return 0 if all("error" not in r for r in rows) else 1


def measure_in_subprocess(setting: dict) -> dict:
    """One setting's row, measured in a fresh process (its own peak memory); a failure is a row too."""
    proc = subprocess.run(
        [sys.executable, "-m", "resshift_core.bench", json.dumps(setting)],
        capture_output=True,
        check=False,  # a failed setting is reported in its row
        text=True,
        env=dict(os.environ),
    )
    if proc.returncode != 0 and setting.get("machine"):
        return {"machine": setting["device"], "error": proc.stderr.strip().splitlines()[-1:]}
    if proc.returncode != 0:
        return {
            "size": setting["size"],
            "dtype": setting["dtype"],
            "device": setting["device"],
            "model": setting["model"],
            "error": proc.stderr.strip().splitlines()[-1:],
        }
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_machine(line: dict) -> None:
    if "error" in line:
        print(f"machine {line['machine']}: FAILED {line['error']}", flush=True)
        return
    ceilings = ", ".join(
        f"{k.removeprefix('conv_gflop_per_s_')} {v:.1f}" for k, v in line.items() if k.startswith("conv_gflop")
    )
    what = " ".join(line.get("cpu_flags", [])) or line.get("gpu", "")
    print(
        f"machine {line['machine']} ({what}), {line['threads']} threads, torch {line['torch']}: "
        f"3x3 conv ceiling GFLOP/s {ceilings}",
        flush=True,
    )


def _print_row(row: dict) -> None:
    if "error" in row:
        print(f"{row['model']} {row['device']:6s} {row['dtype']:5s} {row['size']}: FAILED {row['error']}")
        return
    extra = f"  PSNR vs fp32 {row['psnr_vs_fp32_db']:.1f} dB" if "psnr_vs_fp32_db" in row else ""
    phases = " ".join(f"{p} {row[f'{p}_s']:.2f}" for p in PHASES if f"{p}_s" in row)
    extra = f"  [{phases} s]{extra}" if phases else extra
    if row.get("compile"):
        extra += f"  compiled (first run {row['first_run_seconds']:.1f} s)"
    calls = f"{row['steps']} call" + ("" if row["steps"] == 1 else "s")
    print(
        f"{row['model']:16s} {calls:8s} {row['device']:6s} {row['dtype']:5s} {row['size']:>10s}  "
        f"{row['seconds']:8.2f} s  "
        f"{row['gflops']:9.1f} GFLOP  {row['gflop_per_s']:7.1f} GFLOP/s  {row['mp_per_s']:7.3f} MP/s  "
        f"{row['us_per_px']:8.2f} us/px  peak {row['peak_mb']:8.1f} MB  "
        f"(tiles {row['tile']}x{row['tile_batch']}/{row['vae_tile']}x{row['vae_tile_batch']}, "
        f"{row['threads']} threads){extra}",
        flush=True,
    )


if __name__ == "__main__":
    _setting = json.loads(sys.argv[1])
    print(json.dumps(machine(_setting) if _setting.get("machine") else worker(_setting)))

"""Command line: `python -m resshift_core {upscale,inspect,convert,bench}`.

Argument parsing only; `cli_upscale` handles the files of `upscale`, `bench` the benchmark,
and the work is done by `request.load_pipeline` and `checkpoints`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from . import bench, cli_shard, cli_upscale, registry
from .checkpoints.loading import inspect_checkpoint, load_model
from .checkpoints.writer import save_model
from .colorfix import METHODS as COLOR_FIXES
from .devices import AUTO_DTYPE, DTYPE_NAMES, dtype_from_name
from .errors import ResShiftError
from .request import TASK_DEFAULTS
from .schedule import SPACINGS

COMPILE_HELP = (
    "run the networks through torch.compile (needs a C++ compiler on the CPU, Triton on a GPU): "
    "the first image pays a one-time compile of minutes, later ones of any size reuse it"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resshift_core", description="ResShift image restoration")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("upscale", help="restore/upscale image files or folders")
    up.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    up.add_argument("-o", "--output", required=True, help="output folder (or file name, for one input file)")
    up.add_argument("--task", choices=sorted(TASK_DEFAULTS), help="picks the default model (realsr when no --model)")
    up.add_argument("--model", help="UNet checkpoint: a file, or a published name (see `inspect --list`)")
    up.add_argument("--vae", help="VQGAN checkpoint: a file or a published name (default: the model's pair)")
    up.add_argument(
        "--mask", help="inpainting: a mask file, or a folder of masks named like the inputs (white = fill in)"
    )
    up.add_argument("--preset", help="diffusion preset name, overriding the detected one")
    up.add_argument("--seed", type=int, default=12345, help="random seed (each image uses its own generator)")
    up.add_argument(
        "--steps",
        type=int,
        help="sampling steps (default: the model's preset; fewer than trained respaces the schedule)",
    )
    up.add_argument(
        "--spacing",
        choices=SPACINGS,
        help="which trained steps fewer --steps keep: published (from t = 0, as the published code) or "
        "trailing (ending at the last trained step; one step = the x0 estimate at full noise). "
        "Default: the model's preset",
    )
    up.add_argument(
        "--dtype",
        choices=(AUTO_DTYPE, *DTYPE_NAMES),
        default=AUTO_DTYPE,
        help="compute precision; auto (default): bf16 where the CPU or GPU runs it natively, else fp32 (it says which)",
    )
    up.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    up.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    up.add_argument(
        "--tile", type=int, help="UNet tile side in input pixels (default: by free GPU memory; 256 on the CPU)"
    )
    up.add_argument("--tile-overlap", type=int, help="input pixels shared by neighbouring tiles (default 16)")
    up.add_argument("--vae-tile", type=int, help="VQGAN tile side in input pixels (default: automatic)")
    up.add_argument(
        "--color-fix",
        choices=COLOR_FIXES,
        default="none",
        help="colour correction against the input: wavelet (the input's colours, the result's detail), "
        "adain (match each channel's mean and contrast) or none (default)",
    )
    up.add_argument(
        "--no-download",
        action="store_true",
        help="never download a published checkpoint that is missing (also: RESSHIFT_OFFLINE=1)",
    )
    up.add_argument("--format", choices=["png", "jpg", "webp", "same"], default="png", help="output file type")
    up.add_argument("--skip-existing", action="store_true", help="leave outputs that already exist (resume a run)")
    up.add_argument("--no-progress", action="store_true")

    ins = sub.add_parser("inspect", help="say what a checkpoint is, without running it")
    ins.add_argument("files", nargs="*")
    ins.add_argument("--list", action="store_true", help="list the known published checkpoints")

    conv = sub.add_parser("convert", help="convert a .pth checkpoint to safetensors with metadata")
    conv.add_argument("input")
    conv.add_argument("output")
    conv.add_argument("--preset", help="preset to record (default: the detected one)")
    conv.add_argument("--dtype", choices=DTYPE_NAMES, help="store weights in this dtype")

    bench_cmd = sub.add_parser("bench", help="time the whole chain at 64->256 with random published-size weights")
    bench_cmd.add_argument("--json", action="store_true", help="one JSON object per line")
    bench_cmd.add_argument("--device", action="append", help="devices to measure (default: cpu, and cuda if present)")
    bench_cmd.add_argument("--dtype", action="append", choices=DTYPE_NAMES, help="dtypes (default fp32 and bf16)")
    bench_cmd.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timed runs per setting, the best is kept (0: time the one FLOP-counting warm-up run, for slow sizes)",
    )
    bench_cmd.add_argument("--size", type=int, action="append", help="LR sizes (default 64 and 256; 512 too on CUDA)")
    bench_cmd.add_argument("--threads", type=int, help="CPU threads (default: torch's default)")
    bench_cmd.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    bench_cmd.add_argument(
        "--model",
        action="append",
        help="a random-weight build of a published architecture with the f4 VQGAN (no download): "
        + "; ".join(f"{name}: {b.what}" for name, b in bench.RANDOM_BUILDS.items())
        + "; or a checkpoint as for upscale --model. Repeat to measure several (default random-v3)",
    )
    return parser


def cmd_inspect(args) -> int:
    if args.list:
        for e in registry.entries():
            print(f"{e.name:34s} {e.part:11s} {e.preset or '':14s} {e.what}")
        if not args.files:
            return 0
    if not args.files:
        print("inspect: give checkpoint files, or --list", file=sys.stderr)
        return 2
    for f in args.files:
        print(json.dumps(inspect_checkpoint(f), indent=1))
    return 0


def cmd_convert(args) -> int:
    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise ResShiftError(f"the output must end in .safetensors, got {out.name}")
    loaded = load_model(args.input, preset=args.preset)
    save_model(loaded, out, dtype=dtype_from_name(args.dtype) if args.dtype else None)
    what = f"{loaded.part}, {loaded.parameter_count:,} parameters"
    if loaded.preset is not None:
        what += f", preset {loaded.preset.name} ({loaded.preset_source})"
    print(f"wrote {out} ({what})")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as after Ctrl-C: every atomic
    write removes its temporary file and finished outputs are kept."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with sigterm_as_interrupt():
            return run(args)
    except ResShiftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Terminated:
        print("terminated: finished outputs are kept; rerun with --skip-existing to resume", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept; rerun with --skip-existing to resume", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    if args.command == "inspect":
        return cmd_inspect(args)
    if args.command == "convert":
        return cmd_convert(args)
    if args.command == "upscale":
        return cli_shard.run_sharded(cli_upscale.run_upscale, args)  # one process, or a torchrun rank
    if args.command == "bench":
        return bench.run_bench(args)
    return 2

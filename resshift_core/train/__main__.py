"""python -m resshift_core.train CONFIG.toml [--set section.field=value ...] [--resume auto|PATH|none]

Under torchrun (WORLD_SIZE > 1) the same command trains with DDP. A config that cannot run
stops every process before any work with exit status 2; rank 0 alone prints the one-line
reason (the field and a value that would work) on stderr.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ResShiftError
from .config import TrainConfig, tomllib
from .distributed import Ranks
from .errors import ConfigError

CONFIG_ERROR_STATUS = 2  # as argparse's usage errors


def _apply_overrides(cfg: TrainConfig, items: list[str]) -> TrainConfig:
    d = cfg.to_dict()
    for item in items:
        key, _, value = item.partition("=")
        section, _, name = key.strip().partition(".")
        if not name:
            raise ConfigError(f"--set {item!r}", "is not section.field=value", "for example --set train.steps=1000")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value  # a bare string
        d.setdefault(section, {})[name] = parsed
    return TrainConfig.from_dict(d)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m resshift_core.train", description="Train a ResShift UNet.")
    p.add_argument("config", nargs="?", help="TOML training config (see configs/)")
    p.add_argument("--print-config", action="store_true", help="print the default config as commented TOML and exit")
    p.add_argument(
        "--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="override a field (TOML value)"
    )
    p.add_argument(
        "--resume", default="auto", help="auto (newest checkpoint in out_dir, if any), a checkpoint path, or none"
    )
    p.add_argument("--max-steps", type=int, default=None, help="train at most this many steps in this call")
    p.add_argument(
        "--export-only",
        metavar="OUT.safetensors",
        default=None,
        help="do not train: write the EMA weights of the resumed checkpoint (--resume) to this file",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if not args.print_config and not args.config:
        p.error("a config file is required (or --print-config)")
    if args.export_only and args.resume == "none":
        p.error("--export-only needs a checkpoint: --resume auto or a path")
    try:
        ranks = Ranks.from_env()
    except ResShiftError as e:  # torchrun's variables set by hand, wrongly
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        return _run(args, ranks)
    except ConfigError as e:
        _say(ranks, f"config error: {e}")
        return CONFIG_ERROR_STATUS
    except ResShiftError as e:  # a checkpoint or image that cannot be used: also a sentence, not a traceback
        _say(ranks, f"error: {e}")
        return 1


def _say(ranks: Ranks, line: str) -> None:
    """Every rank met the same error (the same config and files); rank 0 says it once."""
    if ranks.main:
        print(line, file=sys.stderr)


def _run(args: argparse.Namespace, ranks: Ranks) -> int:
    base = TrainConfig.load(args.config) if args.config else TrainConfig()
    cfg = _apply_overrides(base, args.set)
    if args.print_config:
        print(cfg.to_toml(comments=True))
        return 0
    from .loop import Trainer, train

    if args.export_only:
        trainer = Trainer(cfg, resume=args.resume, ranks=ranks)
        try:
            if trainer.step == 0:
                raise ConfigError(
                    "--export-only",
                    f"found no checkpoint under {cfg.log.out_dir}/checkpoints (or at --resume)",
                    "train first, or name a checkpoint with --resume PATH",
                )
            path = trainer.export(args.export_only)
            if path is not None:
                print(f"exported the EMA weights of step {trainer.step} to {path}")
        finally:
            trainer.close()
        return 0
    train(cfg, resume=args.resume, max_steps=args.max_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())

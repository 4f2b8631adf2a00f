"""python -m resshift_core.train CONFIG.toml [--set section.field=value ...] [--resume auto|PATH|none]

Under torchrun (WORLD_SIZE > 1) the same command trains with DDP.
"""

from __future__ import annotations

import argparse
import sys

from .config import TrainConfig, tomllib


def _apply_overrides(cfg: TrainConfig, items: list[str]) -> TrainConfig:
    d = cfg.to_dict()
    for item in items:
        key, _, value = item.partition("=")
        section, _, name = key.strip().partition(".")
        if not name:
            raise SystemExit(f"--set {item!r}: expected section.field=value")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except Exception:
            parsed = value  # a bare string
        d.setdefault(section, {})[name] = parsed
    return TrainConfig.from_dict(d)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m resshift_core.train", description="Train a ResShift UNet.")
    p.add_argument("config", nargs="?", help="TOML training config (see configs/)")
    p.add_argument("--print-config", action="store_true", help="print the default config as commented TOML and exit")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="override a field (TOML value)")
    p.add_argument("--resume", default="auto", help="auto (newest checkpoint in out_dir, if any), a checkpoint path, or none")
    p.add_argument("--max-steps", type=int, default=None, help="train at most this many steps in this call")
    p.add_argument("--export-only", metavar="OUT.safetensors", default=None,
                   help="do not train: write the EMA weights of the resumed checkpoint (--resume) to this file")
    args = p.parse_args(argv)
    if args.print_config:
        base = TrainConfig.load(args.config) if args.config else TrainConfig()
        print(_apply_overrides(base, args.set).to_toml(comments=True))
        return 0
    if not args.config:
        p.error("a config file is required (or --print-config)")
    cfg = _apply_overrides(TrainConfig.load(args.config), args.set)
    from .loop import Trainer, train

    if args.export_only:
        if args.resume == "none":
            p.error("--export-only needs a checkpoint: --resume auto or a path")
        trainer = Trainer(cfg, resume=args.resume)
        if trainer.step == 0:
            p.error(f"no checkpoint to export under {cfg.log.out_dir}/checkpoints (or at --resume)")
        path = trainer.export(args.export_only)
        print(f"exported the EMA weights of step {trainer.step} to {path}")
        return 0
    train(cfg, resume=None if args.resume == "none" else args.resume, max_steps=args.max_steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())

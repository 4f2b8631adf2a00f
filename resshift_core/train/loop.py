"""The training loop: build a run from a TrainConfig, then step, log, checkpoint, validate, export.

One script for one CPU, one GPU, or many GPUs/machines under `torchrun` (a process group is
made only when WORLD_SIZE > 1; only rank 0 writes anything). The parts live beside it: the
objective (objective.py), batches (batches.py), processes (distributed.py), the config and its
checks (config.py, checks.py), validation (evaluate.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from ..checkpoints.loading import LoadedModel, load_unet, load_vae
from ..checkpoints.writer import save_model
from ..devices import dtype_from_name
from ..models.unet import ResShiftUNet
from ..pipeline import ResShiftPipeline
from ..schedule import make_schedule
from . import distributed
from .batches import BatchMaker, plan_batches, plan_degradation
from .chain_space import ChainSpace
from .checkpointing import load_checkpoint, resume_path, save_training_checkpoint
from .checks import check_config
from .config import TrainConfig
from .data import CropDataset, generator, load_val_pairs, stream_seed
from .ema import EmaWeights
from .evaluate import evaluate
from .lr_schedule import WarmupCosine
from .objective import Loss, chain_step_weights, draw_t, resshift_loss
from .perceptual import load_lpips
from .precision import Precision
from .samples import save_sample_sheet, square_pairs


class Trainer:
    """Build everything from a TrainConfig; `run()` trains, checkpoints, validates and exports.

    The config is checked first (a ConfigError, before any work); `resume` is None, "auto" or
    a checkpoint path."""

    def __init__(
        self,
        cfg: TrainConfig,
        resume: str | None = None,
        log: Callable[[str], None] = print,
        ranks: distributed.Ranks | None = None,
    ):
        self.cfg, tr = cfg, cfg.train
        self.ranks = ranks or distributed.Ranks.from_env()
        check_config(cfg, self.ranks.world, self.ranks.local_rank)
        self.out = Path(cfg.log.out_dir)
        checkpoint = resume_path(resume, self.out / "checkpoints")
        self.device = distributed.start(self.ranks, tr.device)
        if tr.num_threads:
            torch.set_num_threads(tr.num_threads)
        self._log = log if self.ranks.main else (lambda *_: None)
        self.preset = cfg.model.diffusion_preset()
        self.schedule = make_schedule(self.preset.schedule)
        self.T = self.schedule.num_steps
        self.t_weights = chain_step_weights(tr.t_weights, self.T)
        self.ucfg = cfg.model.unet_config()
        self.model = self._build_model()
        self.ema = EmaWeights(self.model, tr.ema_rate)
        self.vae = None
        if self.preset.latent:
            self.vae = load_vae(cfg.model.vae_path, device=self.device).model.eval().requires_grad_(False)
        self.space = ChainSpace(self.vae, self.preset.scale_factor)
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=o.lr, betas=(o.betas[0], o.betas[1]), weight_decay=o.weight_decay
        )
        self.scheduler = WarmupCosine(self.optimizer, o.lr, o.lr_min, o.warmup_steps, tr.steps)
        self.precision = Precision(tr.amp, self.device)
        self.net = self._parallel(self.model)
        self.batches = plan_batches(tr.batch_size, tr.microbatch, self.ranks.world)
        d = cfg.degradation
        self.degradation = plan_degradation(d.kind, d.overrides, d.mix_kind, d.mix_fraction, self.batches.local_batch)
        data = CropDataset(
            cfg.data.train_dir,
            cfg.data.gt_size,
            lq_dir=cfg.data.lq_dir,
            sf=self.preset.sf,
            use_hflip=cfg.data.use_hflip,
            use_rot=cfg.data.use_rot,
            cache=cfg.data.cache_images,
            rescale_gt=cfg.data.rescale_gt,
            rescale_size=cfg.data.rescale_size,
        )
        self.make_batch = BatchMaker(
            data,
            self.degradation,
            seed=tr.seed,
            local_batch=self.batches.local_batch,
            rank=self.ranks.rank,
            world=self.ranks.world,
            device=self.device,
        )
        self.val_pairs = load_val_pairs(cfg.data.val_dir, cfg.data.val_max_images) if cfg.data.val_dir else []
        self.lpips = load_lpips(tr.lpips_weight, tr.lpips_weights, self.device)
        self.step = 0
        self.history: list[dict] = []
        if checkpoint is not None:
            self.load_state(load_checkpoint(checkpoint))
            self._log(f"resumed from {checkpoint} at step {self.step}")

    # -- setup ---------------------------------------------------------------------------------
    def _build_model(self) -> ResShiftUNet:
        # the initial weights depend on the seed only
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.cfg.train.seed, "init") % (2**31))
            model = ResShiftUNet(self.ucfg).init_as_published()
        if self.cfg.model.init_checkpoint:
            model.load_state_dict(load_unet(self.cfg.model.init_checkpoint).model.state_dict())
        model.to(self.device)
        if self.cfg.train.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return model

    def _parallel(self, model: ResShiftUNet) -> Any:
        net: Any = model
        if self.ranks.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if self.cfg.train.compile:
            net = torch.compile(net)
        return net

    # -- one step ------------------------------------------------------------------------------
    def _network(
        self, inp: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        if self.cfg.train.channels_last:
            inp, cond = (
                inp.contiguous(memory_format=torch.channels_last),
                cond.contiguous(memory_format=torch.channels_last),
            )
        with self.precision.autocast():
            return self.net(inp, t, lq=cond, mask=mask)

    def loss_terms(self, batch: dict, step: int, micro: int) -> Loss:
        """The objective on one microbatch, with this (step, rank, microbatch)'s t and noise."""
        gt, lq, mask = batch["gt"], batch["lq"], batch.get("mask")
        x0, y, cond = self.space.targets(gt, lq)
        g = generator(self.cfg.train.seed, "noise", step, self.ranks.rank, micro, device=self.device)
        t = draw_t(gt.shape[0], self.T, g, self.t_weights, self.device)
        noise = torch.randn(x0.shape, generator=g, device=self.device)
        lpips = None
        if self.lpips is not None:
            lpips_net = self.lpips

            def lpips(x0_pred: torch.Tensor) -> torch.Tensor:
                return lpips_net(self.space.decode(x0_pred).clamp(-1, 1), gt).mean()

        return resshift_loss(
            self._network,
            x0,
            y,
            cond,
            self.schedule,
            t,
            noise,
            predict=self.preset.predict,
            normalize_input=self.preset.normalize_input,
            latent=self.preset.latent,
            mask=mask,
            lpips=lpips,
            lpips_weight=self.cfg.train.lpips_weight,
        )

    def train_step(self) -> dict:
        """One optimiser step (with gradient accumulation over microbatches)."""
        micro_size, accum, scaler = self.batches.microbatch, self.batches.accumulations, self.precision.scaler
        self.model.train()
        batch = self.make_batch(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for m in range(accum):
            micro = {k: v[m * micro_size : (m + 1) * micro_size] for k, v in batch.items()}
            # gradients are averaged over ranks only on the last microbatch
            sync = self.net.no_sync() if self.ranks.enabled and m < accum - 1 else nullcontext()
            with sync:
                loss, terms = self.loss_terms(micro, self.step, m)
                scaled = loss / accum
                (scaler.scale(scaled) if scaler else scaled).backward()
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v) / accum
        if scaler:
            scaler.unscale_(self.optimizer)
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        if scaler:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model, self.step)
        self.step += 1
        totals["mse"] = distributed.mean_over_ranks(self.ranks, totals["mse"], self.device)
        totals["loss"] = totals["mse"] + self.cfg.train.lpips_weight * totals.get("lpips", 0.0)
        return totals

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {
            "seed": self.cfg.train.seed,
            "scheme": "per-step streams seeded by (seed, stream, step, rank)",
            "torch_cpu": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            rng["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        scaler = self.precision.scaler
        return {
            "step": self.step,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema": self.ema.cpu_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else {},
            "rng": rng,
            "config": self.cfg.to_toml(),
            "history": list(self.history),
        }

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load(state["ema"], self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.precision.scaler and state.get("scaler"):
            self.precision.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        rng = state.get("rng", {})
        if "torch_cpu" in rng:
            torch.set_rng_state(rng["torch_cpu"])
        if "torch_cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["torch_cuda"], self.device)

    def save_checkpoint(self) -> Path | None:
        if not self.ranks.main:
            return None
        return save_training_checkpoint(
            self.out / "checkpoints", self.state_dict(), self.step, self.cfg.log.keep_checkpoints
        )

    # -- the EMA model: validation, samples, export ----------------------------------------------
    def ema_model(self) -> LoadedModel:
        net = ResShiftUNet(self.ucfg)
        net.load_state_dict(self.ema.cpu_state())
        net.eval().requires_grad_(False)
        n = sum(p.numel() for p in net.parameters())
        return LoadedModel("unet", net, self.ucfg, self.preset, "training", "<memory>", n)

    def _pipeline(self) -> ResShiftPipeline:
        vae = load_vae(self.cfg.model.vae_path, device=self.device) if self.vae is not None else None
        return ResShiftPipeline(self.ema_model(), vae, device=self.device)

    @torch.no_grad()
    def validate(self) -> dict:
        """PSNR / SSIM (Y) of the EMA model on the validation pairs, and the bicubic baseline's PSNR."""
        if not self.val_pairs or not self.ranks.main:
            return {}
        lg = self.cfg.log
        res = evaluate(self._pipeline(), self.val_pairs, seed=lg.val_seed, crop_border=lg.val_crop_border)
        return {"val_psnr_y": res["psnr_y"], "val_ssim_y": res["ssim_y"], "val_bicubic_psnr_y": res["bicubic_psnr_y"]}

    @torch.no_grad()
    def save_samples(self) -> None:
        if not self.ranks.main or self.degradation.kind in ("inpaint", "face"):
            return  # samples need the mask / face pipeline: not drawn for these tasks
        if self.val_pairs:
            lq, gt = square_pairs(self.val_pairs, self.preset.sf)
        else:
            b = self.make_batch(0)
            lq, gt = ((b["lq"][:4] + 1) / 2).cpu(), ((b["gt"][:4] + 1) / 2).cpu()
        save_sample_sheet(
            self.out / "samples" / f"step_{self.step:08d}.png", self._pipeline(), lq, gt, self.cfg.log.val_seed
        )

    def export(self, path: Path | str | None = None) -> Path | None:
        """The EMA weights as safetensors with architecture and preset metadata (save_model)."""
        if not self.ranks.main:
            return None
        path = Path(path) if path else self.out / self.cfg.log.export_name
        dtype = dtype_from_name(self.cfg.log.export_dtype)
        return save_model(self.ema_model(), path, dtype=None if dtype == torch.float32 else dtype)

    # -- the loop ------------------------------------------------------------------------------
    def _write_log(self, record: dict) -> None:
        if not self.ranks.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def run(self, max_steps: int | None = None) -> list[dict]:
        """Train to `train.steps` (or `max_steps` more steps); returns the per-step losses of this call."""
        cfg, lg = self.cfg, self.cfg.log
        end = cfg.train.steps if max_steps is None else min(cfg.train.steps, self.step + max_steps)
        if self.ranks.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.toml").write_text(cfg.to_toml(comments=True), encoding="utf-8")
        bar = None
        if lg.progress and self.ranks.main:
            from tqdm.auto import tqdm

            bar = tqdm(total=end, initial=self.step, dynamic_ncols=True, desc="train")
        losses: list[dict] = []
        window: list[float] = []
        t0 = time.time()
        last_t, last_step = t0, self.step
        stopped = False
        while self.step < end:
            terms = self.train_step()
            losses.append({"step": self.step, **terms})
            window.append(terms["loss"])
            lr = self.optimizer.param_groups[0]["lr"]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.4f}", lr=f"{lr:.2e}")
            if self.step % lg.log_every == 0 or self.step == end:
                now = time.time()
                rate = (self.step - last_step) / max(now - last_t, 1e-9)
                rec = {
                    "step": self.step,
                    "loss": sum(window) / len(window),
                    "lr": lr,
                    "steps_per_s": rate,
                    "images_per_s": rate * cfg.train.batch_size,
                    "elapsed_s": now - t0,
                }
                self.history.append(rec)
                self._write_log(rec)
                if bar is None:
                    self._log(json.dumps(rec))
                window, last_t, last_step = [], now, self.step
            if lg.sample_every and self.step % lg.sample_every == 0:
                self.save_samples()
            if lg.val_every and self.step % lg.val_every == 0:
                self._report_val()
            if lg.save_every and self.step % lg.save_every == 0:
                self.save_checkpoint()
            out_of_time = bool(cfg.train.time_limit_s) and time.time() - t0 > cfg.train.time_limit_s
            if distributed.any_rank(self.ranks, out_of_time, self.device):
                self._log(f"time limit {cfg.train.time_limit_s}s reached at step {self.step}")
                stopped = True
                break
        if bar is not None:
            bar.close()
        if self.step >= cfg.train.steps or stopped:
            self.save_checkpoint()
            path = self.export()
            if path:
                self._log(f"exported EMA weights to {path}")
            if not lg.val_every or self.step % lg.val_every:
                self._report_val()
        distributed.barrier(self.ranks)  # rank 0's files are complete when any process returns
        return losses

    def _report_val(self) -> None:
        res = self.validate()
        if res:
            rec = {"step": self.step, **res}
            self._write_log(rec)
            self._log(json.dumps(rec))

    def close(self) -> None:
        distributed.stop(self.ranks)


def train(cfg: TrainConfig, resume: str | None = "auto", max_steps: int | None = None) -> Trainer:
    trainer = Trainer(cfg, resume=resume)
    try:
        trainer.run(max_steps)
    finally:
        trainer.close()
    return trainer


__all__ = ["Trainer", "train"]

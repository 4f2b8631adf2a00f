"""The training loop: the ResShift objective (x0 prediction, MSE, t uniform over the chain).

One script for one CPU, one GPU, or many GPUs/machines under `torchrun` (DDP is set up only
when WORLD_SIZE > 1; only rank 0 writes anything).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .. import registry
from ..checkpoints.loading import LoadedModel, load_unet, load_vae
from ..checkpoints.writer import save_model
from ..degradations import (DegradationConfig, FaceDegradationConfig, MaskConfig, degrade, degrade_face,
                            sample_masks)
from ..models.unet import ResShiftUNet
from ..sampler import q_sample, scale_model_input
from ..schedule import make_schedule
from .checkpointing import latest_checkpoint, load_checkpoint, save_training_checkpoint
from .config import TrainConfig
from .data import CropDataset, generator, load_val_pairs, stream_seed
from .metrics import psnr_y, ssim_y

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class WarmupCosine:
    """Linear warm-up to `lr`, then cosine decay to `lr_min` at `total` steps (published 'cosin')."""

    def __init__(self, optimizer, lr: float, lr_min: float, warmup: int, total: int):
        self.optimizer, self.lr, self.lr_min, self.warmup, self.total = optimizer, lr, lr_min, warmup, total
        self.step_count = 0
        self._apply()

    def value(self, step: int) -> float:
        if self.warmup > 0 and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * progress))

    def _apply(self):
        for group in self.optimizer.param_groups:
            group["lr"] = self.value(self.step_count)

    def step(self):
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "lr": self.lr, "lr_min": self.lr_min,
                "warmup": self.warmup, "total": self.total}

    def load_state_dict(self, d: dict):
        self.step_count = int(d["step_count"])
        self._apply()


class DistInfo:
    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _pick_device(name: str, dist: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", dist.local_rank if dist.enabled else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


class Trainer:
    """Build everything from a TrainConfig; `run()` trains, checkpoints, validates and exports."""

    def __init__(self, cfg: TrainConfig, resume: Optional[str] = None, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.dist = DistInfo()
        if self.dist.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and cfg.train.device != "cpu" else "gloo"
            torch.distributed.init_process_group(backend=backend)
        self.device = _pick_device(cfg.train.device, self.dist)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        self._log = log if self.dist.main else (lambda *_: None)
        self.out = Path(cfg.log.out_dir)
        tr = cfg.train
        self.preset = replace(registry.preset(cfg.model.preset), name=cfg.model.preset)
        self.schedule = make_schedule(self.preset.schedule)
        self.T = self.schedule.num_steps
        self.ucfg = cfg.model.unet_config()
        if self.preset.latent == (not cfg.model.vae_path):
            raise ValueError(
                f"preset {cfg.model.preset} is {'latent' if self.preset.latent else 'pixel-space'}: "
                + ("set model.vae_path to its VQGAN" if self.preset.latent else "leave model.vae_path empty")
            )
        # the network (its initial weights depend on the seed only)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(tr.seed, "init") % (2**31))
            model = ResShiftUNet(self.ucfg).init_as_published()
        if cfg.model.init_checkpoint:
            model.load_state_dict(load_unet(cfg.model.init_checkpoint).model.state_dict())
        model.to(self.device)
        if tr.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.ema = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
        self.vae = None
        if self.preset.latent:
            self.vae = load_vae(cfg.model.vae_path, device=self.device).model.eval().requires_grad_(False)
        # optimisation
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        self.scheduler = WarmupCosine(self.optimizer, o.lr, o.lr_min, o.warmup_steps, tr.steps)
        amp = tr.amp if tr.amp != "auto" else ("bf16" if self.device.type == "cuda" else "none")
        if amp not in ("bf16", "fp16", "none"):
            raise ValueError(f"train.amp must be auto, bf16, fp16 or none, got {tr.amp!r}")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]
        self.scaler = torch.amp.GradScaler(self.device.type) if amp == "fp16" else None
        self.net = model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if tr.compile:
            self.net = torch.compile(self.net)
        # batches
        world = self.dist.world
        if tr.batch_size % world or (tr.batch_size // world) % tr.microbatch:
            raise ValueError(
                f"train.batch_size {tr.batch_size} must split into {world} processes x whole microbatches of {tr.microbatch}"
            )
        self.local_batch = tr.batch_size // world
        self.accum = self.local_batch // tr.microbatch
        self.kind = cfg.degradation.kind
        self.dcfg = self._degradation_config(self.kind, cfg.degradation.overrides)
        self.mix_dcfg, self.mix_count = self._mixed_degradation()
        self.data = CropDataset(cfg.data.train_dir, cfg.data.gt_size, lq_dir=cfg.data.lq_dir, sf=self.preset.sf,
                                use_hflip=cfg.data.use_hflip, use_rot=cfg.data.use_rot, cache=cfg.data.cache_images,
                                rescale_gt=cfg.data.rescale_gt, rescale_size=cfg.data.rescale_size)
        self.val_pairs = load_val_pairs(cfg.data.val_dir, cfg.data.val_max_images) if cfg.data.val_dir else []
        self.lpips = self._perceptual()
        self.step = 0
        self.history: list[dict] = []
        if resume:
            path = latest_checkpoint(self.out / "checkpoints") if resume == "auto" else Path(resume)
            if path is not None and path.is_file():
                self.load_state(load_checkpoint(path))
                self._log(f"resumed from {path} at step {self.step}")
            elif resume != "auto":
                raise FileNotFoundError(f"no checkpoint at {resume}")

    # -- setup helpers ----------------------------------------------------------------------
    @staticmethod
    def _degradation_config(kind: str, overrides: dict):
        ov = dict(overrides)
        if kind == "realsr_x4":
            return DegradationConfig.realsr_x4(**ov)
        if kind == "realsr_x4_testing":
            return DegradationConfig.realsr_x4_testing(**ov)
        if kind == "realsr_x2":
            return DegradationConfig.realsr_x2(**ov)
        if kind == "bicubic_x4":
            return DegradationConfig.bicubic_x4(**ov)
        if kind == "inpaint":
            return MaskConfig(**ov)
        if kind == "face":
            return FaceDegradationConfig(**ov)
        raise ValueError(f"degradation.kind {kind!r}: choose realsr_x4, realsr_x4_testing, realsr_x2, bicubic_x4, "
                         "inpaint or face")

    def _mixed_degradation(self):
        """(config, images per local batch) of degradation.mix_kind, or (None, 0)."""
        d = self.cfg.degradation
        if not d.mix_kind or d.mix_fraction <= 0:
            return None, 0
        if not 0 < d.mix_fraction < 1:
            raise ValueError(f"degradation.mix_fraction {d.mix_fraction}: use a fraction between 0 and 1")
        mixed = self._degradation_config(d.mix_kind, {})
        if not isinstance(self.dcfg, DegradationConfig) or not isinstance(mixed, DegradationConfig):
            raise ValueError(f"degradation.mix_kind {d.mix_kind!r} with kind {self.kind!r}: mixing works between the "
                             "super-resolution kinds (realsr_x4, realsr_x4_testing, realsr_x2, bicubic_x4)")
        if mixed.sf != self.dcfg.sf:
            raise ValueError(f"degradation.mix_kind {d.mix_kind!r} has scale {mixed.sf}, kind {self.kind!r} has "
                             f"{self.dcfg.sf}: mix kinds of the same scale")
        count = round(d.mix_fraction * self.local_batch)
        if count in (0, self.local_batch):
            raise ValueError(f"degradation.mix_fraction {d.mix_fraction} of a batch of {self.local_batch} is "
                             f"{count} images: choose a fraction that leaves both kinds at least one image")
        return mixed, count

    def _perceptual(self):
        tr = self.cfg.train
        if tr.lpips_weight <= 0:
            return None
        if not tr.lpips_weights or not Path(tr.lpips_weights).is_file():
            warnings.warn(f"train.lpips_weight={tr.lpips_weight} but LPIPS weights {tr.lpips_weights!r} are not "
                          "present locally: the perceptual term is SKIPPED (MSE only)")
            return None
        try:
            import lpips  # type: ignore
        except ImportError:
            warnings.warn("the lpips package is not installed: the perceptual term is SKIPPED (MSE only)")
            return None
        net = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)
        net.load_state_dict(torch.load(tr.lpips_weights, map_location="cpu", weights_only=True), strict=False)
        return net.to(self.device).eval().requires_grad_(False)

    # -- data --------------------------------------------------------------------------------
    @torch.no_grad()
    def make_batch(self, step: int) -> dict:
        """gt, lq and (inpainting) mask in [-1, 1] on the device, for this rank at `step`."""
        seed, rank = self.cfg.train.seed, self.dist.rank
        hr, lq = self.data.batch(seed, step, self.local_batch, rank, self.dist.world)
        gt = hr.to(self.device, non_blocking=True).float() / 255
        g = generator(seed, "degrade", step, rank, device=self.device)
        mask = None
        if lq is not None:
            lq = lq.to(self.device).float() / 255
        elif self.kind == "inpaint":
            mask = sample_masks(gt.shape[0], gt.shape[-2], gt.shape[-1], g, self.dcfg, device=self.device)
            lq = gt * (1 - mask)
        elif self.kind == "face":
            lq = degrade_face(gt, g, self.dcfg)
            if isinstance(lq, tuple):
                lq, gt = lq[0], lq[1]
        elif self.mix_dcfg is not None:
            # The last mix_count images of every batch get the second kind, from their own stream.
            k = gt.shape[0] - self.mix_count
            g_mix = generator(seed, "degrade-mix", step, rank, device=self.device)
            lq = torch.cat([degrade(gt[:k], g, self.dcfg), degrade(gt[k:], g_mix, self.mix_dcfg)])
        else:
            lq = degrade(gt, g, self.dcfg)
        out = {"gt": gt * 2 - 1, "lq": (lq.clamp(0, 1) * 2 - 1)}
        if mask is not None:
            out["mask"] = mask * 2 - 1
        return out

    def _upsample(self, lq: torch.Tensor, size) -> torch.Tensor:
        if tuple(lq.shape[-2:]) == tuple(size):
            return lq
        return F.interpolate(lq, size=size, mode="bicubic")

    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return x
        return self.vae.encode(x).float() * self.preset.scale_factor

    # -- the objective -------------------------------------------------------------------------
    def _draw_t(self, n: int, g: torch.Generator) -> torch.Tensor:
        """Chain steps to train on: uniform (the paper), or by train.t_weights."""
        weights = self.cfg.train.t_weights
        if not weights:
            return torch.randint(0, self.T, (n,), generator=g, device=self.device)
        w = torch.as_tensor([float(v) for v in weights], dtype=torch.float64)
        if len(w) != self.T or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"train.t_weights {list(weights)}: need {self.T} non-negative weights, not all zero")
        return torch.multinomial(w.to(self.device), n, replacement=True, generator=g)

    def loss_terms(self, batch: dict, step: int, micro: int) -> tuple[torch.Tensor, dict]:
        """MSE between the network's x0 and the true x0 at t ~ U{0..T-1} (published training_losses)."""
        seed, rank = self.cfg.train.seed, self.dist.rank
        gt, lq, mask = batch["gt"], batch["lq"], batch.get("mask")
        z_start = self._encode(gt)
        z_y = self._encode(self._upsample(lq, gt.shape[-2:]))
        # pixel space: conditioned on the upsampled LR the chain starts from; latent: on the LR itself
        cond = z_y if self.vae is None else lq
        g = generator(seed, "noise", step, rank, micro, device=self.device)
        t = self._draw_t(gt.shape[0], g)
        noise = torch.randn(z_start.shape, generator=g, device=self.device)
        z_t = q_sample(z_start, z_y, t, self.schedule, noise)
        inp = scale_model_input(z_t, t, self.schedule, latent=self.preset.latent) if self.preset.normalize_input else z_t
        if self.cfg.train.channels_last:
            inp, cond = inp.contiguous(memory_format=torch.channels_last), cond.contiguous(memory_format=torch.channels_last)
        ctx = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()
        with ctx:
            pred = self.net(inp, t, lq=cond, mask=mask)
        # A residual model predicts e0 = y - x0 (published RESIDUAL): the same MSE on x0 = y - output.
        x0 = z_y - pred.float() if self.preset.predict == "residual" else pred.float()
        mse = ((x0 - z_start) ** 2).mean()
        loss, terms = mse, {"mse": mse.detach()}
        if self.lpips is not None:
            image = x0 if self.vae is None else self.vae.decode(x0 / self.preset.scale_factor)
            lp = self.lpips(image.clamp(-1, 1), gt).mean()
            loss = loss + self.cfg.train.lpips_weight * lp
            terms["lpips"] = lp.detach()
        return loss, terms

    def train_step(self) -> dict:
        """One optimiser step (with gradient accumulation over microbatches)."""
        tr, step = self.cfg.train, self.step
        self.model.train()
        batch = self.make_batch(step)
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for m in range(self.accum):
            sl = slice(m * tr.microbatch, (m + 1) * tr.microbatch)
            micro = {k: v[sl] for k, v in batch.items()}
            sync = nullcontext()
            if self.dist.enabled and m < self.accum - 1:
                sync = self.net.no_sync()
            with sync:
                loss, terms = self.loss_terms(micro, step, m)
                scaled = loss / self.accum
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            for k, v in terms.items():
                totals[k] = totals.get(k, 0.0) + float(v) / self.accum
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self._update_ema()
        self.step += 1
        if self.dist.enabled:
            t = torch.tensor([totals["mse"]], device=self.device)
            torch.distributed.all_reduce(t)
            totals["mse"] = float(t) / self.dist.world
        totals["loss"] = totals["mse"] + self.cfg.train.lpips_weight * totals.get("lpips", 0.0)
        return totals

    @torch.no_grad()
    def _update_ema(self):
        rate = min(self.cfg.train.ema_rate, (1 + self.step) / (10 + self.step))
        for k, v in self.model.state_dict().items():
            e = self.ema[k]
            if v.is_floating_point():
                e.mul_(rate).add_(v.detach().float(), alpha=1 - rate)
            else:
                e.copy_(v)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        rng = {"seed": self.cfg.train.seed, "scheme": "per-step streams seeded by (seed, stream, step, rank)",
               "torch_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "step": self.step,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema": {k: v.cpu() for k, v in self.ema.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else {},
            "rng": rng,
            "config": self.cfg.to_toml(),
            "history": list(self.history),
        }

    def load_state(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.ema = {k: v.to(self.device).float() for k, v in state["ema"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.history = list(state.get("history", []))
        rng = state.get("rng", {})
        if "torch_cpu" in rng:
            torch.set_rng_state(rng["torch_cpu"])
        if "torch_cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["torch_cuda"], self.device)

    def save_checkpoint(self) -> Optional[Path]:
        if not self.dist.main:
            return None
        return save_training_checkpoint(self.out / "checkpoints", self.state_dict(), self.step,
                                        self.cfg.log.keep_checkpoints)

    # -- evaluation and export -------------------------------------------------------------------
    def ema_model(self) -> LoadedModel:
        net = ResShiftUNet(self.ucfg)
        net.load_state_dict({k: v.cpu() for k, v in self.ema.items()})
        net.eval().requires_grad_(False)
        n = sum(p.numel() for p in net.parameters())
        return LoadedModel("unet", net, self.ucfg, self.preset, "training", "<memory>", n)

    def _pipeline(self):
        from ..pipeline import ResShiftPipeline

        vae = None
        if self.vae is not None:
            vae = load_vae(self.cfg.model.vae_path, device=self.device)
        return ResShiftPipeline(self.ema_model(), vae, device=self.device)

    @torch.no_grad()
    def validate(self) -> dict:
        if not self.val_pairs or not self.dist.main:
            return {}
        pipe = self._pipeline()
        psnrs, ssims, bicubic = [], [], []
        cb = self.cfg.log.val_crop_border
        for name, lq, gt in self.val_pairs:
            out = pipe.restore(lq[None], seeds=[self.cfg.log.val_seed]).cpu()
            psnrs.append(float(psnr_y(out, gt[None], cb)))
            ssims.append(float(ssim_y(out, gt[None], cb)))
            # the baseline to beat, in the same log line
            bic = F.interpolate(lq[None].float(), size=out.shape[-2:], mode="bicubic").clamp(0, 1)
            bicubic.append(float(psnr_y(bic, gt[None, :, : out.shape[-2], : out.shape[-1]], cb)))
        n = len(psnrs)
        return {"val_psnr_y": sum(psnrs) / n, "val_ssim_y": sum(ssims) / n, "val_bicubic_psnr_y": sum(bicubic) / n}

    @torch.no_grad()
    def save_samples(self):
        if not self.dist.main:
            return
        from ..image_io import save_image

        if self.val_pairs:
            lqs = [p[1] for p in self.val_pairs[:4]]
            gts = [p[2] for p in self.val_pairs[:4]]
            size = min(min(x.shape[-2:]) for x in lqs)
            lq = torch.stack([x[:, :size, :size] for x in lqs])
            gt = torch.stack([x[:, :size * self.preset.sf, :size * self.preset.sf] for x in gts])
        else:
            b = self.make_batch(0)
            lq, gt = (b["lq"][:4] + 1) / 2, (b["gt"][:4] + 1) / 2
            lq = lq.cpu()
            gt = gt.cpu()
        if self.kind in ("inpaint", "face"):
            return  # samples need the mask / face pipeline: not drawn for these tasks
        pipe = self._pipeline()
        out = pipe.restore(lq, seeds=[self.cfg.log.val_seed] * lq.shape[0]).cpu()
        bic = F.interpolate(lq.cpu(), size=out.shape[-2:], mode="bicubic").clamp(0, 1)
        rows = [torch.cat([bic[i], out[i], gt[i].cpu()[:, : out.shape[-2], : out.shape[-1]]], -1) for i in range(out.shape[0])]
        save_image(self.out / "samples" / f"step_{self.step:08d}.png", torch.cat(rows, -2))

    def export(self, path: Optional[Path] = None) -> Optional[Path]:
        """The EMA weights as safetensors with architecture and preset metadata (save_model)."""
        if not self.dist.main:
            return None
        path = Path(path) if path else self.out / self.cfg.log.export_name
        dtype = DTYPES[self.cfg.log.export_dtype]
        return save_model(self.ema_model(), path, dtype=None if dtype == torch.float32 else dtype)

    # -- the loop ------------------------------------------------------------------------------
    def _write_log(self, record: dict):
        if not self.dist.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def run(self, max_steps: Optional[int] = None) -> list[dict]:
        """Train to `train.steps` (or `max_steps` more steps); returns the per-step losses of this call."""
        cfg, lg = self.cfg, self.cfg.log
        end = cfg.train.steps if max_steps is None else min(cfg.train.steps, self.step + max_steps)
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.toml").write_text(cfg.to_toml(comments=True), encoding="utf-8")
        bar = None
        if cfg.log.progress and self.dist.main:
            from tqdm.auto import tqdm

            bar = tqdm(total=end, initial=self.step, dynamic_ncols=True, desc="train")
        losses, window = [], []
        t0 = time.time()
        last_t, last_step = t0, self.step
        stopped = False
        while self.step < end:
            terms = self.train_step()
            losses.append({"step": self.step, **terms})
            window.append(terms["loss"])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{terms['loss']:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
            if self.step % lg.log_every == 0 or self.step == end:
                now = time.time()
                rate = (self.step - last_step) / max(now - last_t, 1e-9)
                rec = {"step": self.step, "loss": sum(window) / len(window), "lr": self.optimizer.param_groups[0]["lr"],
                       "steps_per_s": rate, "images_per_s": rate * cfg.train.batch_size, "elapsed_s": now - t0}
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
            if cfg.train.time_limit_s and time.time() - t0 > cfg.train.time_limit_s:
                flag = torch.tensor([1.0], device=self.device)
            else:
                flag = torch.tensor([0.0], device=self.device)
            if self.dist.enabled:
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if float(flag) > 0:
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
        return losses

    def _report_val(self):
        res = self.validate()
        if res:
            rec = {"step": self.step, **res}
            self._write_log(rec)
            self._log(json.dumps(rec))

    def close(self):
        if self.dist.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train(cfg: TrainConfig, resume: Optional[str] = "auto", max_steps: Optional[int] = None) -> Trainer:
    trainer = Trainer(cfg, resume=resume)
    try:
        trainer.run(max_steps)
    finally:
        trainer.close()
    return trainer

"""The training loop: a tiny CPU run learns, resumes exactly, validates, and exports."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_torch_thread
from resshift_core.checkpoints.loading import load_unet
from resshift_core.models.unet import UNetConfig
from resshift_core.pipeline import ResShiftPipeline
from resshift_core.tiny import TASKS, tiny_unet_config
from resshift_core.train import ConfigError, TrainConfig, Trainer
from resshift_core.train.checkpointing import latest_checkpoint, load_checkpoint
from resshift_core.train.evaluate import evaluate


def _write_images(folder: Path, n: int = 6, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:72, 0:80].astype(np.float32)
    for i in range(n):
        img = np.zeros((72, 80, 3), np.float32)
        for c in range(3):
            fx, fy = (float(v) for v in rng.uniform(0.05, 0.4, 2))
            ph = float(rng.uniform(0, 6))
            img[..., c] = 0.5 + 0.4 * np.sin(fx * xx + fy * yy + ph)
        y0, x0 = rng.integers(0, 40, 2)
        img[y0 : y0 + 20, x0 : x0 + 24] = rng.uniform(0, 1, 3)
        sub = folder / ("sub" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        ext = "png" if i % 3 else "jpg"
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(sub / f"im{i}.{ext}")
    return folder


def model_table(ucfg) -> dict:
    """The fields of a UNetConfig that a training config's [model] table takes."""
    return {k: v for k, v in ucfg.to_dict().items() if k in TrainConfig().model.to_table()}


def tiny_config(data: Path, out: Path, **train) -> TrainConfig:
    cfg = TrainConfig()
    # the tiny pixel-space UNet of resshift_core.tiny, on 32-pixel crops with attention at 16
    ucfg = tiny_unet_config("pixel", image_size=32, attention_resolutions=[16])
    cfg.model = cfg.model.replace(preset=TASKS["pixel"].preset, **model_table(ucfg))
    cfg.data = dataclasses.replace(cfg.data, train_dir=str(data), gt_size=32, use_rot=True)
    cfg.degradation = dataclasses.replace(cfg.degradation, kind="bicubic_x4")
    cfg.optim = dataclasses.replace(cfg.optim, lr=2e-3, lr_min=2e-4, warmup_steps=3, grad_clip=1.0)
    cfg.train = dataclasses.replace(
        cfg.train,
        steps=30,
        batch_size=4,
        microbatch=2,
        ema_rate=0.9,
        device="cpu",
        amp="none",
        seed=7,
        channels_last=False,
        **train,
    )
    cfg.log = dataclasses.replace(
        cfg.log,
        out_dir=str(out),
        log_every=5,
        sample_every=0,
        val_every=0,
        save_every=4,
        progress=False,
        export_name="tiny.safetensors",
    )
    return cfg


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return _write_images(tmp_path_factory.mktemp("hr"))


@pytest.fixture(scope="module")
def full_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    trainer = Trainer(tiny_config(data_dir, out), resume=None, log=lambda *_: None)
    losses = trainer.run()
    return trainer, losses, out


def test_loss_falls(full_run):
    _, losses, _ = full_run
    values = [r["loss"] for r in losses]
    assert len(values) == 30 and all(np.isfinite(values))
    first, last = np.mean(values[:6]), np.mean(values[-6:])
    assert last < 0.6 * first, (first, last)


def test_resume_continues_the_same_curve(data_dir, tmp_path):
    cfg = tiny_config(data_dir, tmp_path / "resumed")
    cfg.train = dataclasses.replace(cfg.train, steps=9)
    cfg_full = dataclasses.replace(cfg)
    first = Trainer(cfg, resume=None, log=lambda *_: None)
    part1 = first.run(max_steps=6)  # interrupted after step 6 (checkpoints at steps 4 and 6)
    assert first.step == 6
    # resume from the step-4 checkpoint: steps 5..9 must repeat the uninterrupted curve
    ckpt = tmp_path / "resumed" / "checkpoints" / "step_00000004.pt"
    state = load_checkpoint(ckpt)  # weights_only=True: tensors and plain containers only
    assert state["step"] == 4 and set(state) >= {"model", "ema", "optimizer", "scheduler", "rng", "config"}
    second = Trainer(cfg, resume=str(ckpt), log=lambda *_: None)
    assert second.step == 4
    part2 = second.run()
    # the shared full run uses a different total (30 steps) and so a different cosine:
    # compare against an uninterrupted 9-step run instead
    whole = Trainer(
        dataclasses.replace(cfg_full, log=dataclasses.replace(cfg.log, out_dir=str(tmp_path / "whole"))),
        resume=None,
        log=lambda *_: None,
    ).run()
    a = [r["loss"] for r in whole]
    b = [r["loss"] for r in part1[:4]] + [r["loss"] for r in part2]
    assert [r["step"] for r in part2] == list(range(5, 10))
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    # resume=auto picks last.pt
    latest = latest_checkpoint(tmp_path / "resumed" / "checkpoints")
    assert latest is not None and latest.name == "last.pt"


def test_export_loads_and_restores(full_run):
    _, _, out = full_run
    path = out / "tiny.safetensors"
    assert path.is_file()
    loaded = load_unet(path)
    assert loaded.preset is not None
    assert loaded.preset.name == "pixel_realsr_x4_s4" and loaded.preset.latent is False
    assert loaded.preset_source == "metadata"
    pipe = ResShiftPipeline(loaded, None)
    lr = torch.rand(1, 3, 8, 8)
    sr = pipe.restore(lr, seeds=[0])
    assert sr.shape == (1, 3, 32, 32) and torch.isfinite(sr).all()


def test_export_only_writes_the_checkpoints_ema(full_run, tmp_path, capsys):
    from safetensors.torch import load_file

    from resshift_core.train.__main__ import main

    trainer, _, out = full_run
    config = tmp_path / "run.toml"
    config.write_text(trainer.cfg.to_toml())
    target = tmp_path / "step30.safetensors"
    assert main([str(config), "--export-only", str(target)]) == 0  # resume=auto: the run's last.pt
    assert "step 30" in capsys.readouterr().out
    again, final = load_file(target), load_file(out / "tiny.safetensors")
    assert again.keys() == final.keys() and all(torch.equal(again[k], final[k]) for k in final)
    with pytest.raises(SystemExit):
        main([str(config), "--export-only", str(target), "--resume", "none"])
    empty = tmp_path / "empty.toml"  # a run with no checkpoint yet: one sentence, status 2
    empty.write_text(
        dataclasses.replace(
            trainer.cfg, log=dataclasses.replace(trainer.cfg.log, out_dir=str(tmp_path / "new"))
        ).to_toml()
    )
    assert main([str(empty), "--export-only", str(target)]) == 2
    assert "config error: --export-only found no checkpoint" in capsys.readouterr().err


def test_fold_config_trains_a_pixel_unshuffle_unet(data_dir, tmp_path):
    cfg = tiny_config(data_dir, tmp_path)
    cfg.model = cfg.model.replace(preset="tiny_realsr_x4", pixel_unshuffle=2)
    cfg.train = dataclasses.replace(cfg.train, steps=2)
    trainer = Trainer(cfg, resume=None, log=lambda *_: None)
    trainer.run()
    loaded = load_unet(trainer.export())
    assert isinstance(loaded.config, UNetConfig) and loaded.preset is not None
    assert (
        loaded.config.pixel_unshuffle == 2
        and loaded.preset.schedule.kappa == 0.5
        and loaded.preset.predict == "residual"
    )


@pytest.mark.parametrize(("task", "kind"), [("realsr", "realsr_x4"), ("inpaint", "inpaint"), ("faceir", "face")])
def test_latent_tasks_train_and_export(task, kind, data_dir, tmp_path):
    """Latent training on a tiny VQGAN for real-world SR, inpainting (masks) and faces (f8, 8 channels)."""
    from resshift_core.tiny import write_tiny_checkpoints

    _, vae_path = write_tiny_checkpoints(tmp_path / "models", task)
    ucfg = tiny_unet_config(task)
    preset, factor = TASKS[task].preset, TASKS[task].vae_factor
    cfg = tiny_config(data_dir, tmp_path / "run")
    cfg.model = cfg.model.replace(**model_table(ucfg), preset=preset, vae_path=str(vae_path))
    cfg.data = dataclasses.replace(cfg.data, gt_size=ucfg.image_size * factor)
    cfg.degradation = dataclasses.replace(cfg.degradation, kind=kind)
    cfg.train = dataclasses.replace(cfg.train, steps=3)
    trainer = Trainer(cfg, resume=None, log=lambda *_: None)
    batch = trainer.make_batch(0)
    assert batch["gt"].shape[-1] == ucfg.image_size * factor
    assert ("mask" in batch) == (kind == "inpaint")
    losses = trainer.run()
    assert len(losses) == 3 and all(np.isfinite(r["loss"]) for r in losses)
    loaded = load_unet(trainer.export())
    assert isinstance(loaded.config, UNetConfig) and loaded.preset is not None
    assert loaded.preset.name == preset and loaded.config.cond_mask == (kind == "inpaint")
    assert loaded.config.in_channels == TASKS[task].latent_channels


def test_t_weights_are_checked_before_any_work(data_dir, tmp_path):
    cfg = tiny_config(data_dir, tmp_path)
    cfg.train = dataclasses.replace(cfg.train, t_weights=[1, 1])
    with pytest.raises(ConfigError, match="need 4 non-negative weights"):
        Trainer(cfg, resume=None, log=lambda *_: None)
    assert not (tmp_path / "config.toml").exists()


def test_mixed_degradation_gives_part_of_every_batch_the_second_kind(data_dir, tmp_path):
    from resshift_core.degradations import DegradationConfig, degrade

    cfg = tiny_config(data_dir, tmp_path)
    cfg.degradation = dataclasses.replace(cfg.degradation, kind="realsr_x4", mix_kind="bicubic_x4", mix_fraction=0.25)
    trainer = Trainer(cfg, resume=None, log=lambda *_: None)
    assert trainer.degradation.mix_count == 1
    for step in range(3):
        batch = trainer.make_batch(step)
        gt = batch["gt"] * 0.5 + 0.5
        bicubic = degrade(gt, torch.Generator().manual_seed(0), DegradationConfig.bicubic_x4()) * 2 - 1
        torch.testing.assert_close(batch["lq"][3:], bicubic[3:].clamp(-1, 1))  # the mixed image
        assert not torch.allclose(batch["lq"][:3], bicubic[:3], atol=0.05)  # the real-world ones
        assert torch.equal(trainer.make_batch(step)["lq"], batch["lq"])  # seeded, like the rest
    for kind, fraction, message in [
        ("face", 0.5, "mixing works between the super-resolution kinds"),
        ("realsr_x2", 0.5, "mix kinds of the same scale"),
        ("bicubic_x4", 0.05, "leaves both kinds at least one image"),
        ("bicubic_x4", 1.5, "between 0 and 1"),
        ("blurry", 0.5, "choose realsr_x4"),
    ]:
        cfg.degradation = dataclasses.replace(cfg.degradation, mix_kind=kind, mix_fraction=fraction)
        with pytest.raises(ConfigError, match=message):
            Trainer(cfg, resume=None, log=lambda *_: None)


def test_validation_reports_psnr_ssim_and_the_bicubic_baseline(full_run, tmp_path):
    trainer, _, _ = full_run
    (tmp_path / "val" / "gt").mkdir(parents=True)
    (tmp_path / "val" / "lq").mkdir()
    for i, path in enumerate(sorted(_write_images(tmp_path / "hr", n=3, seed=9).rglob("*.png"))):
        hr = Image.open(path).convert("RGB")  # 80 x 72 -> LR 20 x 18 (x4)
        hr.save(tmp_path / "val" / "gt" / f"v{i}.png")
        hr.resize((20, 18), Image.Resampling.BICUBIC).save(tmp_path / "val" / "lq" / f"v{i}.png")
    cfg = dataclasses.replace(trainer.cfg, data=dataclasses.replace(trainer.cfg.data, val_dir=str(tmp_path / "val")))
    resumed = Trainer(cfg, resume="auto", log=lambda *_: None)  # the trained run's last checkpoint
    assert resumed.step == 30
    result = resumed.validate()
    assert set(result) == {"val_psnr_y", "val_ssim_y", "val_bicubic_psnr_y"}
    assert all(np.isfinite(v) for v in result.values()) and 0 < result["val_ssim_y"] <= 1
    assert 15 < result["val_bicubic_psnr_y"] < 60
    # one evaluation path: the numbers of `python -m resshift_core.train.evaluate` on the export (whose
    # network computes the same up to float rounding, ~1e-7, which may flip a pixel's 8-bit rounding)
    on_file = evaluate(str(trainer.out / "tiny.safetensors"), str(tmp_path / "val"), seed=cfg.log.val_seed)
    assert on_file["images"] == len(list((tmp_path / "val" / "gt").iterdir())) > 0
    for key in ("psnr_y", "ssim_y", "bicubic_psnr_y"):
        assert result[f"val_{key}"] == pytest.approx(on_file[key], rel=2e-5), key

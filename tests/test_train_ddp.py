"""Training under torchrun on the CPU (gloo): two processes train a tiny pixel-space UNet,
write one log, checkpoint, resume to the same result as an uninterrupted run, and export; a
config error stops both with one sentence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import one_torch_thread
from resshift_core.train import TrainConfig
from resshift_core.train.__main__ import main

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available",
)


def torchrun(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m resshift_core.train ARGS` in 2 processes (this interpreter's torchrun)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--monitor-interval",
        "0.05",
        "-m",
        "resshift_core.train",
        *args,
    ]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _images(folder: Path, n: int = 8) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:48].astype(np.float32)
    for i in range(n):
        fx, fy = rng.uniform(0.05, 0.5, 2)
        img = 0.5 + 0.4 * np.sin(fx * xx + fy * yy + i)[..., None] * rng.uniform(0.3, 1, 3)
        Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def _config(data: Path, out: Path, **train) -> TrainConfig:
    cfg = TrainConfig().with_section(
        "model",
        preset="pixel_realsr_x4_s4",
        image_size=32,
        lq_size=32,
        model_channels=32,
        num_res_blocks=1,
        attention_resolutions=[16],
        channel_mult=[1, 2],
        num_head_channels=16,
        swin_depth=1,
        swin_embed_dim=32,
        window_size=4,
        mlp_ratio=2.0,
    )
    cfg = cfg.with_section("data", train_dir=str(data), gt_size=32)
    cfg = cfg.with_section("degradation", kind="bicubic_x4")
    cfg = cfg.with_section("optim", lr=2e-3, lr_min=2e-4, warmup_steps=2)
    # 4 images a step: 2 per process, in 2 microbatches of 1 (gradient accumulation across no_sync)
    cfg = cfg.with_section(
        "train",
        steps=6,
        batch_size=4,
        microbatch=1,
        device="cpu",
        amp="none",
        seed=3,
        channels_last=False,
        num_threads=1,
        **train,
    )
    return cfg.with_section(
        "log",
        out_dir=str(out),
        log_every=1,
        sample_every=0,
        val_every=0,
        save_every=3,
        progress=False,
        export_name="ema.safetensors",
    )


def _losses(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _check(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A: 6 steps in one go (checkpoints at steps 3 and 6). B: A's step-3 checkpoint and log, as
    an interrupted run leaves them (training is deterministic), then --resume auto to step 6."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = _images(tmp / "hr")
    for name in ("a", "b"):
        _config(data, tmp / name).save(tmp / f"{name}.toml")
    out = {"a": _check(torchrun(str(tmp / "a.toml"), "--resume", "none"))}
    (tmp / "b" / "checkpoints").mkdir(parents=True)
    shutil.copy(tmp / "a" / "checkpoints" / "step_00000003.pt", tmp / "b" / "checkpoints")
    (tmp / "b" / "log.jsonl").write_text("".join((tmp / "a" / "log.jsonl").read_text().splitlines(True)[:3]))
    out["b"] = _check(torchrun(str(tmp / "b.toml"), "--resume", "auto"))
    return tmp, out


def test_two_processes_train_and_log_once(runs):
    tmp, out = runs
    records = _losses(tmp / "a")
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]  # rank 0 alone writes
    assert all(np.isfinite(r["loss"]) for r in records)
    assert out["a"].count('"step": 1,') == 1 and out["a"].count("exported EMA weights") == 1
    assert sorted(p.name for p in (tmp / "a" / "checkpoints").iterdir()) == [
        "last.pt",
        "step_00000003.pt",
        "step_00000006.pt",
    ]
    assert (tmp / "a" / "ema.safetensors").is_file()


def test_resume_auto_continues_at_the_checkpoint_and_matches_the_uninterrupted_run(runs):
    tmp, out = runs
    assert out["b"].count("resumed from") == 1 and "step_00000003.pt at step 3" in out["b"]
    assert '"step": 3,' not in out["b"] and out["b"].count('"step": 4,') == 1
    a, b = _losses(tmp / "a"), _losses(tmp / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    # the same data, degradations, t and noise per (step, rank): the same curve and weights
    np.testing.assert_allclose([r["loss"] for r in b[3:]], [r["loss"] for r in a[3:]], rtol=1e-5, atol=1e-7)
    wa, wb = load_file(tmp / "a" / "ema.safetensors"), load_file(tmp / "b" / "ema.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-5, atol=1e-6)


def test_export_only_reads_a_checkpoint_written_under_ddp(runs, capsys):
    tmp, _ = runs
    target = tmp / "again.safetensors"
    with one_torch_thread():
        assert main([str(tmp / "b.toml"), "--export-only", str(target)]) == 0  # one process, last.pt of step 6
    assert "exported the EMA weights of step 6" in capsys.readouterr().out
    again, final = load_file(target), load_file(tmp / "b" / "ema.safetensors")
    assert again.keys() == final.keys() and all(torch.equal(again[k], final[k]) for k in final)


def test_a_config_error_stops_both_processes_with_one_line(tmp_path):
    (tmp_path / "hr").mkdir()
    _config(tmp_path / "hr", tmp_path / "run").save(tmp_path / "bad.toml")
    proc = torchrun(str(tmp_path / "bad.toml"), "--set", "train.batch_size=5")  # 2 processes x microbatch 1
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "config error" in line]
    expected = (
        "config error: train.batch_size = 5 does not split into 2 process(es) x whole microbatches of 1 "
        "(train.microbatch); use train.batch_size = 4 or 6 (a multiple of 2 x 1)"
    )
    assert lines == [expected], proc.stderr
    assert "[rank" not in proc.stderr and "resshift_core/train" not in proc.stderr  # no traceback from any rank
    assert "exitcode  : 2" in proc.stderr  # the config-error status, not a crash
    assert not (tmp_path / "run").exists()

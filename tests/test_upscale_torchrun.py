"""`upscale` under torchrun on the CPU: two processes share the files, write exactly what one
process writes, resume with --skip-existing, and say one progress bar, one summary and one
error for all. Plus the rank bookkeeping in one process (an in-memory store)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_torch_thread
from resshift_core import cli_shard
from resshift_core.cli import main
from resshift_core.cli_outputs import PlannedOutput
from resshift_core.cli_shard import Shard, Tally, plan_digest
from resshift_core.distributed_env import Ranks
from resshift_core.errors import InputError, RanksError

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 6
STEPS = 2  # the shipped model samples 1 step by default; 2 makes the bar's sum over ranks visible
COMMON = ["--dtype", "fp32", "--steps", str(STEPS)]

needs_gloo = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not available in this torch build"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m resshift_core upscale ARGS` in 2 processes of one torch thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port"]
    cmd += [str(_free_port()), "--monitor-interval", "0.05", "-m", "resshift_core", "upscale", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _images(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        pixels = (rng.random((32 + 4 * i, 40, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One plain process, then 2 torchrun processes, on the same inputs and options."""
    tmp = tmp_path_factory.mktemp("shard")
    src = _images(tmp / "in")
    with one_torch_thread():
        assert main(["upscale", str(src), "-o", str(tmp / "plain"), "--no-progress", *COMMON]) == 0
    proc = torchrun(str(src), "-o", str(tmp / "ranks"), *COMMON)
    return tmp, proc


def _outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@needs_gloo
def test_two_ranks_write_the_same_files_as_one_process(runs):
    tmp, proc = runs
    assert proc.returncode == 0, proc.stderr
    plain, ranks = _outputs(tmp / "plain"), _outputs(tmp / "ranks")
    assert sorted(ranks) == [f"im{i}.png" for i in range(N_IMAGES)]
    assert ranks == plain  # byte for byte: each image has its own seeded generator, wherever it runs


@needs_gloo
def test_rank_zero_shows_one_bar_over_all_steps_and_one_summary(runs):
    _, proc = runs
    total = N_IMAGES * STEPS
    assert f"{total}/{total}" in proc.stderr  # both ranks' steps (rank 0 alone does half)
    assert proc.stderr.count(f"/{total} [") >= 1 and f"/{total // 2} [" not in proc.stderr  # no per-rank bar
    assert proc.stderr.count("images restored by") == 1
    assert f"{N_IMAGES} of {N_IMAGES} images restored by 2 processes" in proc.stderr
    lines = proc.stderr.splitlines()
    assert sum(line.startswith("model ") for line in lines) == 1  # the model's line, from rank 0 alone
    assert sum(line.startswith("sampling ") for line in lines) == 1
    assert proc.stdout == ""


@needs_gloo
def test_a_restart_with_skip_existing_redoes_only_what_is_missing_and_fails_on_every_rank(runs):
    tmp, _ = runs
    out = tmp / "ranks"
    for name in ("im1.png", "im4.png"):  # one of each rank's share (items i % 2)
        (out / name).unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    src = tmp / "in"
    (src / "zz_broken.png").write_bytes(b"not an image")  # 7th input: one failure on one rank
    try:
        proc = torchrun(str(src), "-o", str(out), "--skip-existing", "--no-progress", *COMMON)
    finally:
        (src / "zz_broken.png").unlink()
    assert proc.returncode != 0, proc.stderr  # a failed file makes the job fail
    assert proc.stderr.count("images restored by") == 1
    assert "2 of 7 images restored by 2 processes, 4 already done (--skip-existing), 1 failed" in proc.stderr
    assert proc.stderr.count("zz_broken.png:") == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in kept} == kept
    assert _outputs(out) == _outputs(tmp / "plain")


@needs_gloo
def test_a_bad_request_is_refused_by_every_rank_and_said_once(tmp_path):
    src = _images(tmp_path / "in")
    proc = torchrun(str(src), "-o", str(src), "--no-progress")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is the input folder itself" in errors[0], proc.stderr
    assert sorted(p.name for p in src.iterdir()) == [f"im{i}.png" for i in range(N_IMAGES)]


# -- in one process ---------------------------------------------------------------------------


def test_ranks_come_from_torchruns_variables_and_bad_ones_are_one_sentence():
    assert Ranks.from_env({}) == Ranks(0, 0, 1)
    assert Ranks.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == Ranks(3, 1, 4)
    with pytest.raises(InputError, match="WORLD_SIZE='two' is not a whole number"):
        Ranks.from_env({"WORLD_SIZE": "two"})
    with pytest.raises(InputError, match="do not fit together"):
        Ranks.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def _plan(n: int) -> list[PlannedOutput]:
    return [PlannedOutput(Path(f"in/{i}.png"), Path(f"out/{i}.png")) for i in range(n)]


def _rank0_of_two() -> Shard:
    return Shard(Ranks(0, 0, 2), torch.distributed.HashStore())


@needs_gloo
def test_each_rank_takes_every_world_th_item_once_all_planned_the_same():
    store = torch.distributed.HashStore()
    plan = _plan(5)
    store.set("plan/1", f"5 {plan_digest(plan)}")  # rank 1 planned the same
    assert Shard(Ranks(0, 0, 2), store).share(plan) == [plan[0], plan[2], plan[4]]
    assert Shard(Ranks(1, 1, 2), store).share(plan) == [plan[1], plan[3]]


@needs_gloo
def test_ranks_that_see_different_inputs_are_refused():
    shard = _rank0_of_two()
    shard.store.set("plan/1", "4 0123")  # rank 1 listed other files
    with pytest.raises(RanksError, match="process 0 plans 5 outputs and process 1 4 others"):
        shard.share(_plan(5))


@needs_gloo
def test_a_rank_that_ended_or_fell_silent_is_not_waited_for(monkeypatch):
    shard = _rank0_of_two()
    shard.store.set("ended/1", "1")
    with pytest.raises(RanksError, match="process 1 of 2 stopped before finishing its share"):
        shard.finish(Tally(1, 0, 0), 2)
    monkeypatch.setattr(cli_shard, "SILENT_S", 0.2)
    shard = _rank0_of_two()
    with pytest.raises(RanksError, match="process 1 of 2 has not been heard from"):
        shard.finish(Tally(1, 0, 0), 2)


@needs_gloo
def test_the_summary_sums_every_ranks_tally(capsys):
    shard = _rank0_of_two()
    shard.store.set("tally/1", Tally(1, 2, 1).encode())
    assert shard.finish(Tally(2, 0, 0), 6) == 1  # a failure on rank 1 fails rank 0 too
    err = capsys.readouterr().err
    expected = "3 of 6 images restored by 2 processes, 2 already done (--skip-existing), 1 failed (see the lines above)"
    assert err.strip() == expected
    assert Shard(Ranks(1, 1, 2), shard.store).finish(Tally(1, 2, 1), 6) == 1  # rank 1 read the same totals
    assert capsys.readouterr().err == ""


@needs_gloo
def test_rank_zero_loads_first_and_alone_speaks_then_each_machines_first_rank_then_the_rest(monkeypatch):
    store = torch.distributed.HashStore()
    heard: list[tuple[int, bool]] = []

    def load_as(rank: int, local: int) -> int:
        def load(speaks: bool) -> int:
            heard.append((rank, speaks))
            return rank

        return Shard(Ranks(rank, local, 4), store).load_in_turn(load)  # 2 machines of 2 ranks: 0 1 | 2 3

    monkeypatch.setattr(cli_shard, "SILENT_S", 0.1)
    with pytest.raises(RanksError, match="process 0 of 4 has not been heard from"):
        load_as(2, 0)  # the second machine's first rank waits for rank 0
    assert heard == []
    assert load_as(0, 0) == 0
    assert load_as(1, 1) == 1  # the first machine's second rank needs only rank 0
    assert not store.check(["loaded/2"])
    store.set("loaded/2", "1")  # machine 2's first rank has loaded: its second rank may go
    assert load_as(3, 1) == 3
    assert heard == [(0, True), (1, False), (3, False)]


@needs_gloo
def test_a_rank_waiting_on_a_rank_zero_that_refused_stops_quietly(capsys):
    store = torch.distributed.HashStore()
    store.set("error/0", "model file not found: x.pth")
    store.set("ended/0", "1")
    with pytest.raises(cli_shard.RankZeroRefusedError):
        Shard(Ranks(1, 1, 2), store).load_in_turn(lambda speaks: pytest.fail("loaded before rank 0"))
    assert capsys.readouterr().err == ""


@needs_gloo
def test_a_missing_model_is_said_once_and_the_model_line_comes_from_rank_zero_only(tmp_path):
    src = _images(tmp_path / "in")
    proc = torchrun(str(src), "-o", str(tmp_path / "out"), "--no-progress", "--model", str(tmp_path / "nope.pth"))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nope.pth" in errors[0], proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

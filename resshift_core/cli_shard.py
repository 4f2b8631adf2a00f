"""`upscale` in several processes started by torchrun: each takes its share of the planned
files on its own device, rank 0 shows one progress bar and one summary for all.

Every rank plans all outputs (the same refusals everywhere), then takes items i with
i % world == rank. The ranks talk only through the job's key-value store (torchrun's TCPStore,
reached by the env:// rendezvous): step counters that rank 0 polls for its bar, each rank's
tally at the end, and a heartbeat, so that a rank that stops or falls silent is noticed
instead of waited for forever. One process (no WORLD_SIZE) uses none of this.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from .cli_outputs import PlannedOutput
from .devices import pick_device
from .distributed_env import Ranks
from .errors import InputError, RanksError, ResShiftError

CONNECT_TIMEOUT = timedelta(minutes=5)  # for every rank to reach the store at start-up
PULSE_S = 0.5  # heartbeat and progress push/poll period
SILENT_S = 60.0  # a rank whose heartbeat has not moved for this long is taken for dead
POLL_S = 0.05

T = TypeVar("T")


class RankZeroRefusedError(Exception):
    """Rank 0 stopped on a refusal (one line it printed) before this rank got as far."""


@dataclass(frozen=True)
class Tally:
    """What happened to one rank's files (or, summed, to all)."""

    done: int = 0
    skipped: int = 0  # earlier complete outputs kept (--skip-existing)
    failed: int = 0

    def encode(self) -> str:
        return f"{self.done} {self.skipped} {self.failed}"

    @classmethod
    def decode(cls, text: str) -> Tally:
        done, skipped, failed = (int(x) for x in text.split())
        return cls(done, skipped, failed)

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.done + other.done, self.skipped + other.skipped, self.failed + other.failed)


def plan_digest(plan: Sequence[PlannedOutput]) -> str:
    """One line that is equal on two ranks exactly when they planned the same outputs."""
    return hashlib.sha256("\n".join(f"{p.source}\t{p.target}" for p in plan).encode()).hexdigest()


def _bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", file=sys.stderr)


def _connect(ranks: Ranks):
    """The job's store, under a prefix of our own (and of this restart: torchrun may restart
    the workers of a job whose store lives on)."""
    import torch.distributed as dist

    try:
        store, _, _ = next(dist.rendezvous("env://", ranks.rank, ranks.world, timeout=CONNECT_TIMEOUT))
    except ValueError as exc:  # a variable missing when started by hand
        raise InputError(f"{exc}; start several processes with torchrun, which sets them") from None
    except RuntimeError as exc:  # (DistNetworkError and DistStoreError are RuntimeErrors)
        raise RanksError(f"could not reach the other processes' store: {exc}") from None
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"resshift_upscale/{restart}/", store)


class _RankProgress:
    """The bar's face for `cli_upscale`, under torchrun: update() counts steps that the pulse
    sends to the store; rank 0 draws the bar over everyone's steps. close() leaves the bar up
    until every rank has finished (Shard.finish)."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.lock = threading.Lock()
        self.pending = 0

    def update(self, n: int = 1) -> None:
        with self.lock:
            self.pending += n

    def take(self) -> int:
        with self.lock:
            n, self.pending = self.pending, 0
        return n

    def write(self, line: str, file=None) -> None:
        if self.bar is not None:
            self.bar.write(line, file=file)
        else:
            print(line, file=file or sys.stderr)

    def close(self) -> None:
        pass


class Shard:
    """This process's part of one `upscale` request: the whole of it when alone (the default),
    or one rank's share of a torchrun job (see `joined`)."""

    def __init__(self, ranks: Ranks | None = None, store: Any = None) -> None:
        self.ranks = ranks or Ranks()
        self.store = store
        self.progress: _RankProgress | None = None
        self._stop = threading.Event()
        self._pulse: threading.Thread | None = None

    @property
    def alone(self) -> bool:
        return self.store is None

    # -- what upscale calls ---------------------------------------------------------------------

    def device(self, name: str):
        """The device this rank runs on: under torchrun `auto`/`cuda` is cuda:LOCAL_RANK (the CPU
        when there is no GPU); alone, the name as given (load_pipeline picks it)."""
        if self.alone:
            return name
        return pick_device(name, local_rank=self.ranks.local_rank)

    def load_in_turn(self, load: Callable[[bool], T]) -> T:
        """`load(speaks)` when this rank's turn comes, for what every rank needs from disk or
        the network (the model). Rank 0 goes first: it downloads what is missing and alone
        speaks (`speaks` is True only there). Then the first rank of each other machine (where
        the cache is not shared, it is filled once per machine), then the rest, which find the
        files in place. torchrun numbers a machine's ranks from RANK - LOCAL_RANK."""
        if self.alone:
            return load(True)
        rank, local = self.ranks.rank, self.ranks.local_rank
        before = {0: "loaded/0"}
        if local > 0 and rank - local > 0:  # the first rank of this (not the first) machine
            before[rank - local] = f"loaded/{rank - local}"
        if rank > 0:
            self._wait(before, "loading the model")
        result = load(self.ranks.main)
        self.store.set(f"loaded/{rank}", "1")
        return result

    def share(self, plan: Sequence[PlannedOutput]) -> list[PlannedOutput]:
        """This rank's items of the plan, once every rank has planned the same outputs."""
        if self.alone:
            return list(plan)
        digest = plan_digest(plan)
        self.store.set(f"plan/{self.ranks.rank}", f"{len(plan)} {digest}")
        others = self._gather("plan", "planning its outputs")
        differ = {r: v for r, v in others.items() if v.split()[1] != digest}
        if differ:
            r, v = next(iter(differ.items()))
            raise RanksError(
                f"process {self.ranks.rank} plans {len(plan)} outputs and process {r} {v.split()[0]} others: the "
                "processes must see the same input files and -o (on several machines: the same paths on a shared "
                "file system)"
            )
        return list(plan[self.ranks.rank :: self.ranks.world])

    def progress_bar(self, total: int):
        """The progress bar over `total` steps of all ranks (rank 0 draws it)."""
        if self.alone:
            return _bar(total)
        self.progress = _RankProgress(_bar(total) if self.ranks.main else None)
        return self.progress

    def finish(self, mine: Tally, total: int) -> int:
        """One summary over all ranks (rank 0 says it), and the exit status: 1 on every rank when
        any file failed on any rank."""
        if self.alone:
            if mine.failed:
                print(f"{mine.failed} of {total} images failed (see the lines above)", file=sys.stderr)
                return 1
            return 0
        self._send_steps()
        self.store.set(f"tally/{self.ranks.rank}", mine.encode())
        tallies = self._gather("tally", "finishing its share")
        sum_ = sum((Tally.decode(v) for v in tallies.values()), Tally())
        if self.ranks.main:
            self._stop_pulse()
            self._send_steps()  # everyone's last steps are in: the bar ends where the work did
            if self.progress is not None and self.progress.bar is not None:
                self.progress.bar.close()
            what = f"{sum_.done} of {total} images restored by {self.ranks.world} processes"
            if sum_.skipped:
                what += f", {sum_.skipped} already done (--skip-existing)"
            if sum_.failed:
                what += f", {sum_.failed} failed (see the lines above)"
            print(what, file=sys.stderr)
            self.store.set("reported", "1")
        else:  # rank 0 prints before anyone exits: torchrun stops the rest once one exits non-zero
            self._wait({0: "reported"}, "printing the summary")
        return 1 if sum_.failed else 0

    # -- the store ------------------------------------------------------------------------------

    def _gather(self, key: str, what: str) -> dict[int, str]:
        keys = {r: f"{key}/{r}" for r in range(self.ranks.world)}
        self._wait(keys, what)
        return {r: self.store.get(k).decode() for r, k in keys.items()}

    def _wait(self, keys: dict[int, str], what: str) -> None:
        """Until each rank r has set keys[r]; a rank that ended, or whose heartbeat stood still
        for SILENT_S, before setting it is an error (its files are not done)."""
        heard: dict[int, tuple[int, float]] = {}
        waiting = dict(keys)
        while waiting:
            for r, key in list(waiting.items()):
                if self.store.check([key]):
                    del waiting[r]
                    continue
                if self.store.check([f"ended/{r}"]):
                    if r == 0 and self.store.check(["error/0"]):
                        raise RankZeroRefusedError  # rank 0 said why; every rank would have said the same
                    raise RanksError(
                        f"process {r} of {self.ranks.world} stopped before {what} (see its error): its files may "
                        "be missing; rerun with --skip-existing"
                    )
                beat, now = int(self.store.add(f"beat/{r}", 0)), time.monotonic()
                if r not in heard or heard[r][0] != beat:
                    heard[r] = (beat, now)
                elif now - heard[r][1] > SILENT_S:
                    raise RanksError(
                        f"process {r} of {self.ranks.world} has not been heard from for {SILENT_S:.0f} s (before "
                        f"{what}): its files may be missing; rerun with --skip-existing"
                    )
            if waiting:
                time.sleep(POLL_S)

    def same_error_as_rank0(self, message: str) -> bool:
        """Whether rank 0 stops with this very sentence (a bad request is refused by every rank,
        and said once); rank 0 itself always says its own."""
        self.store.set(f"error/{self.ranks.rank}", message)
        if self.ranks.main:
            return False
        deadline = time.monotonic() + SILENT_S
        while time.monotonic() < deadline:
            if self.store.check(["error/0"]):
                return self.store.get("error/0").decode() == message
            if self.store.check(["plan/0"]) or self.store.check(["ended/0"]):  # rank 0 got past the request
                return False
            time.sleep(POLL_S)
        return False

    def _send_steps(self) -> None:
        if self.progress is None:
            return
        n = self.progress.take()
        total = int(self.store.add("steps", n))
        bar = self.progress.bar
        if bar is not None:
            bar.update(total - bar.n)

    def _beat(self) -> None:
        while not self._stop.wait(PULSE_S):
            try:
                self.store.add(f"beat/{self.ranks.rank}", 1)
                self._send_steps()
            except (RuntimeError, OSError):  # the store went away: the waits say what happened
                return

    def _start_pulse(self) -> None:
        self._pulse = threading.Thread(target=self._beat, name="upscale-pulse", daemon=True)
        self._pulse.start()

    def _stop_pulse(self) -> None:
        self._stop.set()
        if self._pulse is not None:
            self._pulse.join()
            self._pulse = None

    def close(self) -> None:
        self._stop_pulse()
        if self.progress is not None and self.progress.bar is not None:
            self.progress.bar.close()
        with contextlib.suppress(RuntimeError, OSError):  # the store is gone: nobody waits any more
            self.store.set(f"ended/{self.ranks.rank}", "1")


def run_sharded(run: Callable[[Any, Shard], int], args: Any) -> int:
    """`run(args, shard)` alone, or as one rank of a torchrun job (WORLD_SIZE > 1)."""
    ranks = Ranks.from_env()
    if not ranks.enabled:
        return run(args, Shard())
    shard = Shard(ranks, _connect(ranks))
    shard._start_pulse()
    try:
        return run(args, shard)
    except RankZeroRefusedError:
        return 1  # rank 0 says it
    except ResShiftError as exc:
        if shard.same_error_as_rank0(str(exc)):
            return 1  # rank 0 says it
        raise
    finally:
        shard.close()


__all__ = ["Shard", "Tally", "plan_digest", "run_sharded"]

"""Who this process is among several started by torchrun (or by hand with the same variables):
the one reading of RANK, LOCAL_RANK and WORLD_SIZE, shared by training and `upscale`.
No torch import: reading the environment needs none."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InputError

ENV_HINT = "torchrun sets it; unset RANK, LOCAL_RANK and WORLD_SIZE to run one process"


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name}={text!r} is not a whole number ({ENV_HINT})") from None


@dataclass(frozen=True)
class Ranks:
    """This process among `world` (torchrun's RANK, LOCAL_RANK and WORLD_SIZE)."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Ranks:
        ranks = cls(_env_int(env, "RANK", 0), _env_int(env, "LOCAL_RANK", 0), _env_int(env, "WORLD_SIZE", 1))
        if ranks.world < 1 or not 0 <= ranks.rank < ranks.world or ranks.local_rank < 0:
            raise InputError(
                f"RANK={ranks.rank}, LOCAL_RANK={ranks.local_rank}, WORLD_SIZE={ranks.world} do not fit together "
                f"(0 <= RANK < WORLD_SIZE; {ENV_HINT})"
            )
        return ranks

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes shared files and prints for all."""
        return self.rank == 0


__all__ = ["Ranks"]

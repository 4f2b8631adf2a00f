"""Out-of-memory errors: telling them apart, and retrying tiled work with smaller tiles."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from .tiling import TilingConfig


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/MPS/XPU out-of-memory errors, and the CPU allocator's "can't allocate memory"."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    if not isinstance(exc, (RuntimeError, MemoryError)):
        return False
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def free_accelerator_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def retry_with_smaller_tiles(
    stage: str,
    tiling: TilingConfig,
    work: Callable[[TilingConfig], torch.Tensor],
    *,
    oom_check: Callable[[BaseException], bool],
    on_out_of_memory: Callable[[str, TilingConfig], None] | None,
    device: torch.device,
) -> torch.Tensor:
    """`work(tiling)`; on an out-of-memory error (`oom_check`) run it again with the smaller
    tiles `tiling.smaller(stage)` gives, until they cannot shrink further. Before each retry
    `on_out_of_memory(stage, smaller)` runs (default: empty the CUDA cache). The whole result
    is one band of `retry_bands_with_smaller_tiles`, the one retry rule."""
    bands = retry_bands_with_smaller_tiles(
        stage,
        tiling,
        lambda tc: [(0, work(tc))],
        oom_check=oom_check,
        on_out_of_memory=on_out_of_memory,
        device=device,
    )
    ((_, result),) = list(bands)
    return result


def retry_bands_with_smaller_tiles(
    stage: str,
    tiling: TilingConfig,
    work: Callable[[TilingConfig], Iterable[tuple[int, torch.Tensor]]],
    *,
    oom_check: Callable[[BaseException], bool],
    on_out_of_memory: Callable[[str, TilingConfig], None] | None,
    device: torch.device,
) -> Iterator[tuple[int, torch.Tensor]]:
    """`retry_with_smaller_tiles` for work that yields row bands (see `row_bands`): after an
    out-of-memory error the work starts again with smaller tiles, and only the rows not yet
    yielded are passed on (the bands already given away cannot be taken back)."""
    emitted = 0
    while True:
        try:
            for first, rows in work(tiling):
                stop = first + rows.shape[-2]
                if stop <= emitted:
                    continue
                skip = max(0, emitted - first)  # rows an attempt before this one gave already
                yield first + skip, rows[..., skip:, :]
                emitted = stop
            return
        except Exception as exc:
            if not oom_check(exc):
                raise
            smaller = tiling.smaller(stage)
            if smaller is None:
                raise
        # Outside the except block, so the failed attempt's tensors can be freed first.
        if on_out_of_memory is not None:
            on_out_of_memory(stage, smaller)
        else:
            free_accelerator_memory(device)
        tiling = smaller


__all__ = ["free_accelerator_memory", "is_out_of_memory", "retry_bands_with_smaller_tiles", "retry_with_smaller_tiles"]

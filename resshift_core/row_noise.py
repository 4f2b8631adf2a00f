"""The rows of a seeded noise field, drawn a band at a time instead of all at once.

`SeededNoise` draws one image's noise as `torch.randn(C, H, W, generator=g)`. On the CPU that
fills the tensor in order from the generator's stream in groups of 16 values (the last group,
if the size is not a multiple of 16, is redrawn from 16 further values). So the same field
comes out of consecutive draws of the stream, as long as every draw but the last starts and
ends on a multiple of 16 and the last is at least 16 values long and ends the field
(tests/test_row_noise.py checks this against the whole draw). A band of rows of all channels
is then read with one cursor per channel, each a copy of the generator advanced to its
channel's start; only the rows in use are held, so a huge field never exists whole.
"""

from __future__ import annotations

import torch

GROUP = 16  # values torch's CPU normal fill transforms together
SKIP_CHUNK = 1 << 22  # values drawn at a time while advancing a cursor to its channel


def _round_down(n: int, multiple: int) -> int:
    return n // multiple * multiple


class _Cursor:
    """One copy of the generator, reading the stream forward from a multiple of GROUP."""

    def __init__(self, state: torch.Tensor, total: int):
        self.gen = torch.Generator(device="cpu")
        self.gen.set_state(state)
        self.total = total  # length of the whole field's stream
        self.pos = 0  # stream position of the next value drawn
        self.held = torch.empty(0)  # values drawn from held_from on
        self.held_from = 0

    def _draw_to(self, end: int) -> torch.Tensor:
        """Values pos..stop, stop >= end, keeping the draw rules (see the module docstring)."""
        stop = min(self.total, -(-end // GROUP) * GROUP)
        if self.total - stop < GROUP:
            stop = self.total  # the last draw must hold the field's last 16 values
        values = torch.randn(stop - self.pos, generator=self.gen, dtype=torch.float32)
        self.pos = stop
        return values

    def skip_to(self, start: int) -> None:
        """Advance (drawing and dropping values) to the multiple of GROUP at or before `start`."""
        target = _round_down(start, GROUP)
        while self.pos < target:
            self._draw_to(min(target, self.pos + SKIP_CHUNK))
        self.held, self.held_from = torch.empty(0), self.pos

    def read(self, start: int, end: int) -> torch.Tensor:
        """Stream values start..end; `start` never goes back before what was last kept."""
        if start < self.held_from:
            raise ValueError("noise rows must be read top to bottom")
        if end > self.pos:
            self.held = torch.cat([self.held, self._draw_to(end)])
        out = self.held[start - self.held_from : end - self.held_from]
        return out

    def release(self, before: int) -> None:
        """Forget values before stream position `before`."""
        drop = min(max(0, before - self.held_from), self.held.numel())
        if drop and 2 * drop >= self.held.numel():  # compact once most values are used, not every band
            self.held = self.held[drop:].clone()
            self.held_from += drop


class NoiseRows:
    """Rows of the field `torch.randn(channels, height, width, generator=g)` for one image.

    `rows(a, b)` returns channels x (b - a) x width; calls must not go back above a row given to
    `release`. The generator is copied, not advanced.
    """

    def __init__(self, generator: torch.Generator, channels: int, height: int, width: int):
        self.channels, self.height, self.width = channels, height, width
        total = channels * height * width
        state = generator.get_state()
        if height * width < 2 * GROUP:  # too small for the rule's edge cases to matter: draw it whole
            whole = torch.Generator(device="cpu")
            whole.set_state(state)
            self._whole: torch.Tensor | None = torch.randn(channels, height, width, generator=whole)
            self._cursors: list[_Cursor] = []
            return
        self._whole = None
        self._cursors = []
        for c in range(channels):
            cursor = _Cursor(state, total)
            cursor.skip_to(c * height * width)
            self._cursors.append(cursor)

    def _offset(self, channel: int, row: int) -> int:
        return (channel * self.height + row) * self.width

    def rows(self, first: int, stop: int) -> torch.Tensor:
        if not 0 <= first <= stop <= self.height:
            raise ValueError(f"rows {first}..{stop} are outside 0..{self.height}")
        if self._whole is not None:
            return self._whole[:, first:stop]
        planes = [
            cursor.read(self._offset(c, first), self._offset(c, stop)).view(stop - first, self.width)
            for c, cursor in enumerate(self._cursors)
        ]
        return torch.stack(planes)

    def release(self, before_row: int) -> None:
        """Rows above `before_row` will not be asked for again."""
        for c, cursor in enumerate(self._cursors):
            cursor.release(self._offset(c, before_row))


__all__ = ["NoiseRows"]

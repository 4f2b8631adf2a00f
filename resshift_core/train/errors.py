"""The one error a training config can raise: it names the field and a value that would work."""

from __future__ import annotations

from ..errors import ResShiftError


class ConfigError(ResShiftError, ValueError):
    """A training config that cannot run, found before any work starts.

    Also a ValueError, so callers that caught the ValueErrors of earlier versions still do.
    `str()` is one line, `FIELD PROBLEM; FIX`, the form `python -m resshift_core.train` prints.
    """

    def __init__(self, field: str, problem: str, fix: str):
        self.field, self.problem, self.fix = field, _one_line(problem), _one_line(fix)
        super().__init__(f"{field} {self.problem}; {self.fix}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


__all__ = ["ConfigError"]

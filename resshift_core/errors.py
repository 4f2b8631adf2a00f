"""Errors a user can act on. Every message says what was wrong and how to fix it."""


class ResShiftError(Exception):
    """Base class: anything raised on purpose by resshift_core."""


class CheckpointError(ResShiftError):
    """A checkpoint file is missing, truncated, corrupt, or not a ResShift/VQGAN checkpoint."""


class ArchitectureError(CheckpointError):
    """The weights do not describe an architecture we can build (or the wrong part was given)."""


class ImageError(ResShiftError):
    """An input image cannot be read, or has a mode or size we cannot process."""


class InputError(ResShiftError):
    """Bad arguments or tensors given to the pipeline (wrong shape, NaNs, mismatched sizes)."""


class SettingsError(ResShiftError, ValueError):
    """Diffusion settings (a preset, a schedule) out of their valid range, from a file's metadata,
    the registry or the caller. A ValueError too, for callers that validate with it."""


class RanksError(ResShiftError):
    """Processes started together (torchrun) that cannot finish together: one stopped or fell
    silent, or they do not see the same inputs."""

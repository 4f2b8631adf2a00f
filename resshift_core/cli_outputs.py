"""Where `upscale` writes each result, decided for all inputs before any work is done.

Nothing a user owns is lost: an output that would land on an input, two inputs that would
write one file, or an output folder that is an input folder are refused with one sentence
before the first network call. `--skip-existing` only skips an earlier output that opens as a
complete image of the expected size (a 0-byte or cut-off file is redone).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

IMAGE_SUFFIX = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
# Endings that make `-o NAME` a file name (for a single input) rather than a folder.
FILE_ENDINGS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
EXIF_ORIENTATION = 0x0112
SWAPPED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees


@dataclass(frozen=True)
class PlannedOutput:
    source: Path
    target: Path


def _key(path: Path) -> str:
    """One spelling per file: absolute, symlinks resolved, case folded where the OS folds it."""
    return os.path.normcase(os.path.realpath(path))


def _is_within(path: Path, folder: Path) -> bool:
    inner, outer = _key(path), _key(folder)
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def output_path(src: Path, root: Path | None, out: Path, fmt: str, single_file: bool) -> Path:
    """The result file of `src`: `out` itself for one input named like a file, else `out/` plus
    the path below the input folder `root`, with the ending of `fmt` ("same" keeps the input's)."""
    if single_file and out.suffix.lower() in FILE_ENDINGS:
        return out
    suffix = src.suffix.lower() if fmt == "same" else IMAGE_SUFFIX[fmt]
    rel = src.relative_to(root) if root is not None else Path(src.name)
    return (out / rel).with_suffix(suffix)


def plan_outputs(files: list[Path], inputs: list[Path], output: str, fmt: str) -> list[PlannedOutput]:
    """Every input's result file, or InputError if the plan would lose or mix up anything."""
    if not output.strip():
        raise InputError("-o is empty: give an output folder (or, for one input file, an output file name)")
    out = Path(output)
    single = len(inputs) == 1 and inputs[0].is_file()
    if single and out.suffix.lower() not in FILE_ENDINGS and out.suffix and not out.is_dir():
        raise InputError(
            f"-o {out} has the ending {out.suffix!r}, which is no image format: name the file .png, .jpg, .webp, "
            ".tif or .bmp, or give a folder"
        )
    for folder in (p for p in inputs if p.is_dir()):
        if _key(folder) == _key(out):
            raise InputError(
                f"-o {out} is the input folder itself: the results would replace or mix with the originals; "
                "write them to another folder (e.g. -o upscaled/)"
            )
    root = inputs[0] if len(inputs) == 1 and inputs[0].is_dir() else None
    sources = {_key(f): f for f in files}
    planned: list[PlannedOutput] = []
    taken: dict[str, Path] = {}
    for src in files:
        target = output_path(src, root, out, fmt, single)
        key = _key(target)
        if key in sources:
            raise InputError(
                f"the result of {src} would be written to {target}, which is an input: nothing was written; "
                "choose another -o (or --format)"
            )
        if key in taken:
            raise InputError(
                f"{taken[key]} and {src} would both be written to {target}: nothing was written; "
                "rename one, use --format same, or upscale the folders one at a time"
            )
        taken[key] = src
        planned.append(PlannedOutput(src, target))
    return planned


def inputs_outside(files: list[Path], inputs: list[Path], output: str) -> list[Path]:
    """The inputs, less any inside the output folder when it lies within an input folder (the
    results of an earlier run). An output folder that is an input folder is left to plan_outputs
    to refuse."""
    out = Path(output)
    if not output.strip() or not out.is_dir() or any(_key(p) == _key(out) for p in inputs):
        return files
    return [f for f in files if not _is_within(f, out)]


def oriented_size(path: Path) -> tuple[int, int] | None:
    """An image's (width, height) after its EXIF orientation, from its header; None if unreadable."""
    from PIL import Image

    if not path.is_file():  # a pipe can be read once, and load_image reads it
        return None
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, ValueError, SyntaxError):
        return None
    return (height, width) if orientation in SWAPPED_ORIENTATIONS else (width, height)


def is_complete_output(target: Path, expected_size: tuple[int, int] | None) -> bool:
    """An earlier result that can stand: it decodes whole (a cut-off file does not) and, when
    the expected (width, height) is known, has that size."""
    from PIL import Image

    if not target.is_file() or target.stat().st_size == 0:
        return False
    try:
        with Image.open(target) as im:
            size = im.size
            im.load()  # decodes every pixel: a truncated file raises here
    except (OSError, ValueError, SyntaxError):
        return False
    return expected_size is None or tuple(size) == tuple(expected_size)


__all__ = [
    "PlannedOutput",
    "inputs_outside",
    "is_complete_output",
    "oriented_size",
    "output_path",
    "plan_outputs",
]

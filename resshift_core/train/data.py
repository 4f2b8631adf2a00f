"""Training data: random HR crops (or paired LR/HR crops) drawn from a folder, step by step.

Every random choice of step `s` on rank `r` comes from generators seeded by (seed, s, r, stream),
so the data a step sees depends only on the config and the step number: a resumed run sees
exactly what an uninterrupted one would have, on any number of processes. The image order is an
epoch permutation shared by all ranks; rank r takes its own slice of each global batch (the
DistributedSampler scheme).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F

from ..image_io import list_images, load_image
from .errors import ConfigError


def stream_seed(*parts) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across runs and machines)."""
    digest = hashlib.sha256(repr(tuple(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, *parts, device="cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, *parts))
    return g


def _to_uint8(path: Path) -> torch.Tensor:
    rgb = load_image(path).rgb  # 3HW float in [0, 1]
    return (rgb * 255).round().clamp(0, 255).to(torch.uint8)


def check_crop_sizes(gt_size: int, rescale_size: int, sf: int, paired: bool) -> None:
    """data.gt_size and data.rescale_size that crops can be made with."""
    if gt_size < 1:
        raise ConfigError("data.gt_size", f"= {gt_size} is not a crop side", "for example data.gt_size = 256")
    if paired and gt_size % sf:
        raise ConfigError(
            "data.gt_size",
            f"= {gt_size} is not a multiple of the scale factor {sf} (paired data)",
            f"use data.gt_size = {max(sf, gt_size // sf * sf)}",
        )
    if rescale_size and rescale_size < gt_size:
        raise ConfigError(
            "data.rescale_size",
            f"{rescale_size} is smaller than gt_size {gt_size}",
            f"use data.rescale_size = 0 (= gt_size) or at least {gt_size}",
        )


class CropDataset:
    """HR images (and optionally their LR partners) from which fixed-size random crops are drawn."""

    def __init__(
        self,
        train_dir: str,
        gt_size: int,
        *,
        lq_dir: str = "",
        sf: int = 4,
        use_hflip: bool = True,
        use_rot: bool = False,
        cache: bool = True,
        rescale_gt: bool = False,
        rescale_size: int = 0,
    ):
        if not train_dir:
            raise ConfigError("data.train_dir", "is empty", "name a folder of HR training images")
        self.paths = list_images(train_dir, recursive=True)
        if not self.paths:
            raise ConfigError(
                "data.train_dir",
                f"= {train_dir!r} holds no images",
                "name a folder of HR training images (png, jpg, webp, bmp, tif; searched recursively)",
            )
        self.lq_paths: list[Path] | None = None
        if lq_dir:
            by_stem = {Path(p).stem: p for p in list_images(lq_dir, recursive=True)}
            missing = [p for p in self.paths if Path(p).stem not in by_stem]
            if missing:
                raise ConfigError(
                    "data.lq_dir",
                    f"= {lq_dir!r} lacks the LR partners of {len(missing)} HR images, e.g. {missing[0]}",
                    'give every HR image an LR image of the same name, or data.lq_dir = "" (synthetic degradation)',
                )
            self.lq_paths = [by_stem[Path(p).stem] for p in self.paths]
        self.gt_size, self.sf = int(gt_size), int(sf)
        check_crop_sizes(self.gt_size, int(rescale_size), self.sf, paired=self.lq_paths is not None)
        self.use_hflip, self.use_rot = use_hflip, use_rot
        # Paired LR/HR data is used as it is: resizing the HR would break the pairing.
        self.rescale_gt = bool(rescale_gt) and self.lq_paths is None
        self.rescale_size = int(rescale_size) or self.gt_size
        self.cache = cache
        self._hr: dict[int, torch.Tensor] = {}
        self._lq: dict[int, torch.Tensor] = {}
        if cache:
            for i in range(len(self.paths)):
                self._load(i)

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, i: int):
        if i in self._hr:
            return self._hr[i], self._lq.get(i)
        hr = _to_uint8(self.paths[i])
        lq = _to_uint8(self.lq_paths[i]) if self.lq_paths is not None else None
        if self.cache:
            self._hr[i] = hr
            if lq is not None:
                self._lq[i] = lq
        return hr, lq

    def indices(self, seed: int, step: int, batch: int, rank: int = 0, world: int = 1) -> list[int]:
        """This rank's image indices at `step` (global batch = batch * world)."""
        n = len(self)
        out = []
        for j in range(rank * batch, (rank + 1) * batch):
            k = step * batch * world + j
            epoch, pos = divmod(k, n)
            perm = torch.randperm(n, generator=generator(seed, "epoch", epoch))
            out.append(int(perm[pos]))
        return out

    def batch(self, seed: int, step: int, batch: int, rank: int = 0, world: int = 1):
        """(hr, lq or None): uint8 B3HW crops for this rank at `step`."""
        g = generator(seed, "crop", step, rank)
        hrs, lqs = [], []
        for i in self.indices(seed, step, batch, rank, world):
            hr, lq = self._load(i)
            s = self.gt_size
            if lq is not None:
                ls = s // self.sf
                h, w = lq.shape[-2:]
                hr = hr[:, : h * self.sf, : w * self.sf]
                hr, lq = _pad_to(hr, s), _pad_to(lq, ls)
                h, w = lq.shape[-2:]
                y = int(torch.randint(0, h - ls + 1, (1,), generator=g))
                x = int(torch.randint(0, w - ls + 1, (1,), generator=g))
                lq = lq[:, y : y + ls, x : x + ls]
                hr = hr[:, y * self.sf : (y + ls) * self.sf, x * self.sf : (x + ls) * self.sf]
            elif self.rescale_gt:
                hr = _rescaled_square(hr, s, self.rescale_size, g)
            else:
                hr = _random_crop(_pad_to(hr, s), s, g)
            flips = torch.rand(3, generator=g)
            hr, lq = _augment(hr, lq, flips, self.use_hflip, self.use_rot)
            hrs.append(hr)
            if lq is not None:
                lqs.append(lq)
        return torch.stack(hrs), (torch.stack(lqs) if lqs else None)


def _random_crop(img: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    h, w = img.shape[-2:]
    y = int(torch.randint(0, h - size + 1, (1,), generator=g))
    x = int(torch.randint(0, w - size + 1, (1,), generator=g))
    return img[:, y : y + size, x : x + size]


def _rescaled_square(img: torch.Tensor, gt_size: int, rescale_size: int, g: torch.Generator) -> torch.Tensor:
    """The published rescale_gt crop: a random square as large as the short side (at least
    gt_size), area-resized to gt_size, so a crop shows a whole scene at the scale of the
    evaluation images rather than a zoomed-in patch. With rescale_size > gt_size the square is
    resized to rescale_size and a gt_size crop is taken from it (ours: the same image scale at a
    smaller, cheaper crop)."""
    side = max(min(img.shape[-2:]), rescale_size)
    square = _random_crop(_pad_to(img, side), side, g)
    if side != rescale_size:
        square = F.interpolate(square[None].float(), size=(rescale_size, rescale_size), mode="area")[0]
        square = square.round().clamp(0, 255).to(torch.uint8)
    return _random_crop(square, gt_size, g) if rescale_size != gt_size else square


def _pad_to(img: torch.Tensor, size: int) -> torch.Tensor:
    """Reflect-pad (published crop_pad_size idea) an image smaller than the crop."""
    h, w = img.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return img
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(img[None].float(), (0, pw, 0, ph), mode=mode)[0].to(img.dtype)


def _augment(hr, lq, r, hflip: bool, rot: bool):
    def apply(x):
        if x is None:
            return None
        if hflip and r[0] < 0.5:
            x = x.flip(-1)
        if rot and r[1] < 0.5:
            x = x.flip(-2)
        if rot and r[2] < 0.5:
            x = x.transpose(-1, -2)
        return x.contiguous()

    return apply(hr), apply(lq)


def load_val_pairs(val_dir: str, max_images: int = 0) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, lq, gt) float 3HW [0, 1] from val_dir/lq and val_dir/gt, matched by file stem."""
    root = Path(val_dir)
    lq_dir, gt_dir = root / "lq", root / "gt"
    if not lq_dir.is_dir() or not gt_dir.is_dir():
        raise ConfigError(
            "data.val_dir",
            f"= {val_dir!r} has no lq/ and gt/ subfolders",
            'name a folder that has them (e.g. Val_SR), or data.val_dir = ""',
        )
    gts = {Path(p).stem: p for p in list_images(gt_dir, recursive=False)}
    pairs = []
    for p in list_images(lq_dir, recursive=False):
        stem = Path(p).stem
        if stem not in gts:
            continue
        pairs.append((stem, load_image(p).rgb, load_image(gts[stem]).rgb))
        if max_images and len(pairs) >= max_images:
            break
    if not pairs:
        raise ConfigError(
            "data.val_dir",
            f"= {val_dir!r} has no lq/gt pairs with matching names",
            "give lq/NAME and gt/NAME images the same names",
        )
    return pairs


__all__ = ["CropDataset", "check_crop_sizes", "generator", "load_val_pairs", "stream_seed"]

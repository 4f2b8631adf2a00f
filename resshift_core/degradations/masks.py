"""Inpainting masks (1 = hole), seeded, following the published ``datapipe/masks.py`` (LaMa's
``MixedMaskGenerator``) with the parameters of ``inpaint_lama256_imagenet.yaml`` /
``inpaint_lama256_face.yaml`` (both use the same mask settings).

Three generators, one drawn uniformly per mask:

* ``irregular`` -- free-form brush strokes: each stroke is 1..5 connected segments of length
  10..max_len+9 at a few fixed angles, drawn with a round-capped brush of width 5..max_width+4;
* ``box``       -- 1..4 axis-aligned rectangles, sides in [bbox_min_size, bbox_max_size], kept
  ``margin`` pixels from the border;
* ``outpainting`` -- strips along the borders: each side with probability 0.5 (at least one),
  width U{min_padding, max_padding} of the image size.

The published generator has a linear ramp hook that is off in ResShift's configs (coefficient 1);
with coefficient 1 its stroke count is drawn from ``[min_times, max_times + 1]`` and its box size up
to ``bbox_max_size`` -- reproduced here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import _rng

MASK_KINDS = ("irregular", "box", "outpainting")


@dataclass
class MaskConfig:
    """Mask-generator settings; defaults = published ResShift inpainting configs (ImageNet and face)."""

    irregular_proba: float = 1.0  # relative probability of free-form strokes
    irregular_max_angle: int = 4  # stroke angles are 0.01 + {0..max_angle-1} radians (mirrored for even strokes)
    irregular_max_len: int = 200  # segment length is 10 + U{0..max_len-1} pixels
    irregular_max_width: int = 100  # brush width is 5 + U{0..max_width-1} pixels
    irregular_min_times: int = 1  # fewest strokes
    irregular_max_times: int = 5  # published bound; with ramp coefficient 1 up to max_times + 1 strokes are drawn
    box_proba: float = 1.0  # relative probability of rectangles
    box_margin: int = 10  # rectangles keep this many pixels from the border
    box_min_size: int = 30  # smallest rectangle side
    box_max_size: int = 150  # largest rectangle side (also limited by image size - 2 * margin)
    box_min_times: int = 1  # fewest rectangles
    box_max_times: int = 4  # most rectangles
    outpainting_proba: float = 1.0  # relative probability of border strips
    outpainting_min_padding: float = 0.04  # narrowest strip, fraction of the image size
    outpainting_max_padding: float = 0.25  # widest strip (exclusive), fraction of the image size
    outpainting_side_probs: tuple[float, float, float, float] = (0.5, 0.5, 0.5, 0.5)  # left, top, right, bottom
    invert_proba: float = 0.0  # probability of inverting a mask (published: 0)


def _segment_capsules(h: int, w: int, segs: list, radii: list) -> torch.Tensor:
    """Union of thick segments (round caps, like ``cv2.line`` with a thickness): pixels whose centre
    lies within ``radius`` of segment (x0, y0, x1, y1).  Each segment is evaluated in its bounding box."""
    m = torch.zeros(h, w, dtype=torch.bool)
    for (x0, y0, x1, y1), r in zip(segs, radii, strict=True):
        ya, yb = max(0, math.floor(min(y0, y1) - r)), min(h, math.ceil(max(y0, y1) + r) + 1)
        xa, xb = max(0, math.floor(min(x0, x1) - r)), min(w, math.ceil(max(x0, x1) + r) + 1)
        if ya >= yb or xa >= xb:
            continue
        yy = torch.arange(ya, yb, dtype=torch.float32).view(-1, 1) - y0
        xx = torch.arange(xa, xb, dtype=torch.float32).view(1, -1) - x0
        dx, dy = float(x1 - x0), float(y1 - y0)
        len2 = max(dx * dx + dy * dy, 1e-12)
        t = ((xx * dx + yy * dy) / len2).clamp_(0, 1)
        dist2 = (xx - t * dx).square_() + (yy - t * dy).square_()
        m[ya:yb, xa:xb] |= dist2 <= r * r
    return m


def irregular_mask(h: int, w: int, generator: torch.Generator, cfg: MaskConfig | None = None) -> torch.Tensor:
    """Free-form brush-stroke mask ``(h, w)`` float {0, 1}."""
    cfg = cfg or MaskConfig()
    g = generator
    times = _rng.randint1(g, cfg.irregular_min_times, cfg.irregular_max_times + 2)
    segs, radii = [], []
    for i in range(times):
        sx, sy = _rng.randint1(g, 0, w), _rng.randint1(g, 0, h)
        for _ in range(1 + _rng.randint1(g, 0, 5)):
            angle = 0.01 + _rng.randint1(g, 0, cfg.irregular_max_angle)
            if i % 2 == 0:
                angle = 2 * math.pi - angle
            length = 10 + _rng.randint1(g, 0, cfg.irregular_max_len)
            brush = 5 + _rng.randint1(g, 0, cfg.irregular_max_width)
            ex = min(max(int(sx + length * math.sin(angle)), 0), w)
            ey = min(max(int(sy + length * math.cos(angle)), 0), h)
            segs.append((sx, sy, ex, ey))
            radii.append(brush / 2.0)
            sx, sy = ex, ey
    m = _segment_capsules(h, w, segs, radii)
    return m.float()


def box_mask(h: int, w: int, generator: torch.Generator, cfg: MaskConfig | None = None) -> torch.Tensor:
    """Random-rectangles mask ``(h, w)`` float {0, 1}."""
    cfg = cfg or MaskConfig()
    g = generator
    m = torch.zeros(h, w)
    max_size = min(cfg.box_max_size + 1, h - 2 * cfg.box_margin, w - 2 * cfg.box_margin)
    if max_size <= cfg.box_min_size:
        raise ValueError(
            f"image {h}x{w} too small for boxes of side >= {cfg.box_min_size} with margin {cfg.box_margin}"
        )
    for _ in range(_rng.randint1(g, cfg.box_min_times, cfg.box_max_times + 1)):
        bw = _rng.randint1(g, cfg.box_min_size, max_size)
        bh = _rng.randint1(g, cfg.box_min_size, max_size)
        x0 = _rng.randint1(g, cfg.box_margin, w - cfg.box_margin - bw + 1)
        y0 = _rng.randint1(g, cfg.box_margin, h - cfg.box_margin - bh + 1)
        m[y0 : y0 + bh, x0 : x0 + bw] = 1
    return m


def outpainting_mask(h: int, w: int, generator: torch.Generator, cfg: MaskConfig | None = None) -> torch.Tensor:
    """Border-strips mask ``(h, w)`` float {0, 1}: at least one side is masked."""
    cfg = cfg or MaskConfig()
    g = generator

    def pad(size: int) -> float:
        lo, hi = int(cfg.outpainting_min_padding * size), int(cfg.outpainting_max_padding * size)
        return _rng.randint1(g, lo, max(hi, lo + 1)) / size

    p_left, p_top, p_right, p_bottom = pad(h), pad(w), pad(h), pad(w)  # published draws all four first
    regions = [
        (slice(0, h), slice(0, int(p_left * w))),
        (slice(0, int(p_top * h)), slice(0, w)),
        (slice(0, h), slice(int((1 - p_right) * w), w)),
        (slice(int((1 - p_bottom) * h), h), slice(0, w)),
    ]
    m = torch.zeros(h, w)
    applied = _rng.uniform(g, 4, 0.0, 1.0) < torch.tensor(cfg.outpainting_side_probs, dtype=torch.float64)
    if not bool(applied.any()):
        applied[int(_rng.choice(g, 1, cfg.outpainting_side_probs)[0])] = True
    for use, (rs, cs) in zip(applied.tolist(), regions, strict=True):
        if use:
            m[rs, cs] = 1
    return m


_GENERATORS = {"irregular": irregular_mask, "box": box_mask, "outpainting": outpainting_mask}


def sample_masks_with_kinds(
    batch_size: int, height: int, width: int, generator: torch.Generator, config: MaskConfig | None = None, device=None
) -> tuple[torch.Tensor, list[str]]:
    """``(masks, kinds)``: masks ``(B, 1, H, W)`` float {0, 1} (1 = hole) and the generator used for each."""
    cfg = config or MaskConfig()
    probs = [cfg.irregular_proba, cfg.box_proba, cfg.outpainting_proba]
    kinds = _rng.choice_from(generator, batch_size, MASK_KINDS, probs)
    out = []
    for kind in kinds:
        m = _GENERATORS[kind](height, width, generator, cfg)
        if cfg.invert_proba > 0 and bool(_rng.bernoulli(generator, 1, cfg.invert_proba)[0]):
            m = 1 - m
        out.append(m)
    return torch.stack(out).unsqueeze(1).to(device), kinds


def sample_masks(
    batch_size: int, height: int, width: int, generator: torch.Generator, config: MaskConfig | None = None, device=None
) -> torch.Tensor:
    """Inpainting masks ``(B, 1, H, W)`` float {0, 1}, 1 = hole."""
    return sample_masks_with_kinds(batch_size, height, width, generator, config, device)[0]


def apply_mask(img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The masked input as published: holes set to 0 in [0, 1] (= -1 after the [-1, 1] normalisation)."""
    return img * (1 - mask.to(img.dtype))

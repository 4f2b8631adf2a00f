"""The RealESRGAN-style second-order degradation used to train ResShift's real-world SR models.

``degrade(hr, generator, config) -> lr`` turns a batch of HR images ``(B, 3, H, W)`` in [0, 1] into
LR images ``(B, 3, H // sf, W // sf)`` on the same device, using only ``generator`` for randomness.

Pipeline (published ``trainer.py: TrainerDifIR.prepare_data`` + ``RealESRGANDataset``):

1. first order: blur (kernel1) -> random resize (up/down/keep, area/bilinear/bicubic)
   -> Gaussian or Poisson noise (colour or grey) -> clamp -> JPEG (quality ~ U(jpeg_range));
2. with probability ``second_order_prob``: blur (kernel2, with probability ``second_blur_prob``)
   -> random resize to ``(H / sf * s, W / sf * s)`` -> Gaussian or Poisson noise;
3. in random order (50/50): [resize to ``H // sf`` + final sinc filter] then JPEG, or
   JPEG then [resize + final sinc];
4. clamp to [0, 1] and round to 8-bit levels.

Granularity follows the published code: blur kernels, the final sinc kernel, noise levels, grey/colour
noise and JPEG qualities are drawn per image; the resize choices, the Gaussian-vs-Poisson choice,
whether the second order / second blur happen and the final order are drawn once per batch.
``per_sample=True`` draws those per image too (images are then processed in groups).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from . import _rng
from .jpeg import jpeg_compress
from .kernels import (
    BlurKernelConfig,
    _odd_range,
    filter2d,
    pulse_kernels,
    sample_blur_kernels,
    sample_final_sinc,
    second_order_kernel_config,
    usm_sharp,
)
from .noise import add_gaussian_noise, add_poisson_noise
from .resize import RESIZE_MODES, bicubic_downsample, interpolate

UPDOWN = ("up", "down", "keep")
FINAL_ORDERS = ("resize_sinc_then_jpeg", "jpeg_then_resize_sinc")


@dataclass
class DegradationConfig:
    """All hyper-parameters of the training degradation.

    Defaults: the published real-world x4 (``realsr_swinunet_realesrgan256*.yaml``)."""

    mode: str = "realesrgan"  # "realesrgan" (the pipeline above) or "bicubic" (bicubic downsampling by sf only)
    sf: int = 4  # scale factor: the LR image is (H // sf, W // sf); published configs use 4 and 2
    # ---- first order
    blur1: BlurKernelConfig = field(default_factory=BlurKernelConfig)  # sizes 3..19 -> 21, sigma 0.2..3
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # probability of resizing up / down / keeping the size
    resize_range: tuple[float, float] = (0.15, 1.5)  # down-scale from U(lo, 1), up-scale from U(1, hi)
    gaussian_noise_prob: float = 0.5  # probability of Gaussian (else Poisson) noise
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma range, 8-bit units
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)  # Poisson noise scale range
    gray_noise_prob: float = 0.4  # probability that an image's noise is grey (same for R, G, B)
    jpeg_range: tuple[float, float] = (30.0, 95.0)  # JPEG quality range
    # ---- second order
    second_order_prob: float = 0.5  # probability of running the second degradation order
    second_blur_prob: float = 0.8  # probability of blurring within the second order
    blur2: BlurKernelConfig = field(default_factory=second_order_kernel_config)  # sizes 3..13 -> 15, sigma 0.2..1.5
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)  # second-order up / down / keep probabilities
    resize_range2: tuple[float, float] = (0.3, 1.2)  # second-order scale range (relative to H / sf)
    gaussian_noise_prob2: float = 0.5  # second-order probability of Gaussian (else Poisson) noise
    noise_range2: tuple[float, float] = (1.0, 25.0)  # second-order Gaussian sigma range, 8-bit units
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)  # second-order Poisson scale range
    gray_noise_prob2: float = 0.4  # second-order probability of grey noise
    jpeg_range2: tuple[float, float] = (30.0, 95.0)  # final JPEG quality range
    # ---- final sinc filter
    final_sinc_prob: float = 0.8  # probability of the final sinc filter (else identity)
    final_sinc_sizes: tuple[int, ...] = _odd_range(3, 13)  # final sinc support sizes (published kernel_range2)
    final_sinc_pad_to: int = 15  # final sinc kernels are padded to this size
    final_sinc_omega: tuple[float, float] = (math.pi / 3, math.pi)  # final sinc cutoff range (radians)
    # ---- misc
    resize_modes: tuple[str, ...] = RESIZE_MODES  # interpolation modes drawn uniformly at every resize
    final_order_prob: float = 0.5  # probability of [resize + sinc] before the final JPEG (else after)
    resize_back: bool = False  # bicubic-upsample the LR back to (H, W) (published: False)
    use_sharp: bool = False  # USM-sharpen the HR before degrading (published: False); see degrade_pair
    round_output: bool = True  # clamp to [0, 1] and round to 8-bit levels at the end (realesrgan mode)
    per_sample: bool = False  # draw the per-batch choices (resizes, noise kind, orders) per image instead
    bicubic_matlab: bool = True  # bicubic mode: MATLAB-style imresize (published) vs torch antialiased bicubic
    jpeg_integer_tables: bool = False  # libjpeg-style integer quantisation tables (published DiffJPEG: fractional)
    jpeg_fancy_upsampling: bool = False  # libjpeg triangle chroma upsampling (published DiffJPEG: replication)

    def __post_init__(self):
        if self.mode not in ("realesrgan", "bicubic"):
            raise ValueError(f"mode must be 'realesrgan' or 'bicubic', got {self.mode!r}")
        if int(self.sf) != self.sf or self.sf < 1:
            raise ValueError(f"sf must be a positive integer, got {self.sf}")
        self.sf = int(self.sf)
        if isinstance(self.blur1, dict):
            self.blur1 = BlurKernelConfig(**self.blur1)
        if isinstance(self.blur2, dict):
            self.blur2 = BlurKernelConfig(**self.blur2)
        bad = set(self.resize_modes) - set(RESIZE_MODES)
        if bad or not self.resize_modes:
            raise ValueError(f"unknown resize modes {bad}")

    @classmethod
    def realsr_x4(cls, **overrides) -> DegradationConfig:
        """Published real-world x4 training degradation."""
        return cls(**overrides)

    @classmethod
    def realsr_x4_testing(cls, **overrides) -> DegradationConfig:
        """Published testing degradation (``degradation_testing_realesrgan.yaml``), with which ResShift's
        ImageNet-Test (and so ``Val_SR``) was made: one order of mild blur, noise and JPEG, then
        the final resize, an occasional small sinc and a light JPEG."""
        light: dict[str, Any] = {"kernel_prob": (0.6, 0.4, 0.0, 0.0, 0.0, 0.0), "betap_range": (1.0, 1.2)}
        return cls(
            **{
                "blur1": BlurKernelConfig(
                    kernel_sizes=_odd_range(3, 11),
                    pad_to=13,
                    sinc_prob=0.1,
                    sigma_range=(0.2, 0.8),
                    betag_range=(1.0, 1.5),
                    **light,
                ),
                "blur2": BlurKernelConfig(
                    kernel_sizes=_odd_range(3, 5),
                    pad_to=7,
                    sinc_prob=0.0,
                    sigma_range=(0.2, 0.5),
                    betag_range=(0.5, 0.8),
                    **light,
                ),
                "resize_range": (0.5, 1.5),
                "noise_range": (1.0, 15.0),
                "poisson_scale_range": (0.05, 0.3),
                "jpeg_range": (70.0, 95.0),
                "second_order_prob": 0.0,
                "second_blur_prob": 0.2,
                "resize_range2": (0.8, 1.2),
                "noise_range2": (1.0, 10.0),
                "poisson_scale_range2": (0.05, 0.2),
                "jpeg_range2": (80.0, 100.0),
                "final_sinc_prob": 0.2,
                "final_sinc_sizes": _odd_range(3, 5),
                "final_sinc_pad_to": 7,
                **overrides,
            }
        )

    @classmethod
    def realsr_x2(cls, **overrides) -> DegradationConfig:
        """Published real-world x2 training degradation (``realsr_realesrgan256_x2.yaml``): same, sf = 2."""
        return cls(**{"sf": 2, **overrides})

    @classmethod
    def bicubic_x4(cls, **overrides) -> DegradationConfig:
        """Published bicubic x4 task: MATLAB bicubic downsampling only."""
        return cls(**{"mode": "bicubic", "sf": 4, **overrides})


@dataclass
class DegradationParams:
    """Everything drawn for one batch; every field holds one entry per image (length B)."""

    kernel1: torch.Tensor  # (B, k1, k1) first-order blur kernels
    kernel1_info: dict  # type / size / sigma_x / sigma_y / theta / beta / omega per kernel
    resize1_type: list  # "up" / "down" / "keep"
    resize1_scale: torch.Tensor  # (B,) float64 scale of the first resize
    resize1_mode: list  # interpolation mode of the first resize
    noise1_type: list  # "gaussian" / "poisson"
    noise1_sigma: torch.Tensor  # (B,) Gaussian sigma (8-bit units), used if noise1_type is gaussian
    noise1_poisson_scale: torch.Tensor  # (B,) Poisson scale, used if noise1_type is poisson
    noise1_gray: torch.Tensor  # (B,) bool grey noise
    jpeg1_quality: torch.Tensor  # (B,) first JPEG quality
    second_order: torch.Tensor  # (B,) bool: second order applied
    blur2_applied: torch.Tensor  # (B,) bool: second blur applied (only meaningful with second_order)
    kernel2: torch.Tensor  # (B, k2, k2)
    kernel2_info: dict
    resize2_type: list
    resize2_scale: torch.Tensor
    resize2_mode: list
    noise2_type: list
    noise2_sigma: torch.Tensor
    noise2_poisson_scale: torch.Tensor
    noise2_gray: torch.Tensor
    jpeg2_quality: torch.Tensor  # (B,) final JPEG quality
    final_order: list  # one of FINAL_ORDERS
    final_mode: list  # interpolation mode of the final resize to H // sf
    sinc_kernel: torch.Tensor  # (B, ks, ks) final sinc (or identity) kernels
    sinc_info: dict  # applied / size / omega

    def __len__(self) -> int:
        return int(self.kernel1.shape[0])

    def subset(self, idx: list[int]) -> DegradationParams:
        """The parameters of the images ``idx``."""

        def pick(v: Any):
            if isinstance(v, torch.Tensor):
                return v[idx]
            if isinstance(v, list):
                return [v[i] for i in idx]
            if isinstance(v, dict):
                return {k: pick(x) for k, x in v.items()}
            return v

        return DegradationParams(**{f.name: pick(getattr(self, f.name)) for f in fields(self)})


# --------------------------------------------------------------------------- sampling
def _updown(g, n: int, probs, scale_range) -> tuple[list, torch.Tensor]:
    kind = _rng.choice_from(g, n, UPDOWN, probs)
    u = _rng.uniform(g, n, 0.0, 1.0)
    up = 1.0 + (scale_range[1] - 1.0) * u
    down = scale_range[0] + (1.0 - scale_range[0]) * u
    scale = torch.tensor(
        [float(up[i]) if k == "up" else float(down[i]) if k == "down" else 1.0 for i, k in enumerate(kind)],
        dtype=torch.float64,
    )
    return kind, scale


def _tile(values, n: int):
    """Repeat a length-1 draw to length n (per-batch choice) or keep a length-n draw."""
    if isinstance(values, torch.Tensor):
        return values.expand(n).clone() if values.shape[0] == 1 else values
    return values * n if len(values) == 1 else values


def sample_params(
    generator: torch.Generator, batch_size: int, config: DegradationConfig | None = None
) -> DegradationParams:
    """Draw all random choices of one realesrgan-mode batch (noise fields themselves are drawn when applied)."""
    cfg = config or DegradationConfig()
    g, n = generator, batch_size
    m = n if cfg.per_sample else 1  # draws of the per-batch choices
    kernel1, info1 = sample_blur_kernels(g, n, cfg.blur1)
    kernel2, info2 = sample_blur_kernels(g, n, cfg.blur2)
    sinc, sinc_info = sample_final_sinc(
        g, n, cfg.final_sinc_prob, cfg.final_sinc_sizes, cfg.final_sinc_omega, cfg.final_sinc_pad_to
    )
    r1_type, r1_scale = _updown(g, m, cfg.resize_prob, cfg.resize_range)
    r1_mode = _rng.choice_from(g, m, cfg.resize_modes)
    n1_type = ["gaussian" if b else "poisson" for b in _rng.bernoulli(g, m, cfg.gaussian_noise_prob)]
    n1_sigma = _rng.uniform(g, n, *cfg.noise_range)
    n1_pscale = _rng.uniform(g, n, *cfg.poisson_scale_range)
    n1_gray = _rng.bernoulli(g, n, cfg.gray_noise_prob)
    q1 = _rng.uniform(g, n, *cfg.jpeg_range)
    second = _rng.bernoulli(g, m, cfg.second_order_prob)
    blur2 = _rng.bernoulli(g, m, cfg.second_blur_prob)
    r2_type, r2_scale = _updown(g, m, cfg.resize_prob2, cfg.resize_range2)
    r2_mode = _rng.choice_from(g, m, cfg.resize_modes)
    n2_type = ["gaussian" if b else "poisson" for b in _rng.bernoulli(g, m, cfg.gaussian_noise_prob2)]
    n2_sigma = _rng.uniform(g, n, *cfg.noise_range2)
    n2_pscale = _rng.uniform(g, n, *cfg.poisson_scale_range2)
    n2_gray = _rng.bernoulli(g, n, cfg.gray_noise_prob2)
    q2 = _rng.uniform(g, n, *cfg.jpeg_range2)
    order = [FINAL_ORDERS[0] if b else FINAL_ORDERS[1] for b in _rng.bernoulli(g, m, cfg.final_order_prob)]
    f_mode = _rng.choice_from(g, m, cfg.resize_modes)
    return DegradationParams(
        kernel1=kernel1,
        kernel1_info=info1,
        resize1_type=_tile(r1_type, n),
        resize1_scale=_tile(r1_scale, n),
        resize1_mode=_tile(r1_mode, n),
        noise1_type=_tile(n1_type, n),
        noise1_sigma=n1_sigma,
        noise1_poisson_scale=n1_pscale,
        noise1_gray=n1_gray,
        jpeg1_quality=q1,
        second_order=_tile(second, n),
        blur2_applied=_tile(blur2, n),
        kernel2=kernel2,
        kernel2_info=info2,
        resize2_type=_tile(r2_type, n),
        resize2_scale=_tile(r2_scale, n),
        resize2_mode=_tile(r2_mode, n),
        noise2_type=_tile(n2_type, n),
        noise2_sigma=n2_sigma,
        noise2_poisson_scale=n2_pscale,
        noise2_gray=n2_gray,
        jpeg2_quality=q2,
        final_order=_tile(order, n),
        final_mode=_tile(f_mode, n),
        sinc_kernel=sinc,
        sinc_info=sinc_info,
    )


# --------------------------------------------------------------------------- applying
def _add_noise(x: torch.Tensor, kinds: list, sigma, pscale, gray, g) -> torch.Tensor:
    gi = [i for i, k in enumerate(kinds) if k == "gaussian"]
    pi = [i for i, k in enumerate(kinds) if k != "gaussian"]
    if len(gi) == len(kinds):
        return add_gaussian_noise(x, sigma, gray, g)
    if len(pi) == len(kinds):
        return add_poisson_noise(x, pscale, gray, g)
    out = torch.empty_like(x)
    out[gi] = add_gaussian_noise(x[gi], sigma[gi], gray[gi], g)
    out[pi] = add_poisson_noise(x[pi], pscale[pi], gray[pi], g)
    return out


def _group_key(p: DegradationParams, i: int) -> tuple:
    return (
        float(p.resize1_scale[i]),
        p.resize1_mode[i],
        bool(p.second_order[i]),
        float(p.resize2_scale[i]),
        p.resize2_mode[i],
        p.final_order[i],
        p.final_mode[i],
    )


def _apply_group(hr: torch.Tensor, p: DegradationParams, g: torch.Generator, cfg: DegradationConfig) -> torch.Tensor:
    """Degrade images that share every size-changing choice (p.resize*, second_order, final_*)."""
    h, w = hr.shape[-2:]
    sf = cfg.sf

    def jpeg(x: torch.Tensor, quality) -> torch.Tensor:
        return jpeg_compress(x.clamp(0, 1), quality, cfg.jpeg_integer_tables, cfg.jpeg_fancy_upsampling)

    # first order
    out = filter2d(hr, p.kernel1)
    out = interpolate(out, p.resize1_mode[0], scale_factor=float(p.resize1_scale[0]))
    out = _add_noise(out, p.noise1_type, p.noise1_sigma, p.noise1_poisson_scale, p.noise1_gray, g)
    out = jpeg(out, p.jpeg1_quality)
    # second order
    if bool(p.second_order[0]):
        if bool(p.blur2_applied.any()):
            k2 = torch.where(
                p.blur2_applied.view(-1, 1, 1), p.kernel2, pulse_kernels(len(p), p.kernel2.shape[-1]).float()
            )
            out = filter2d(out, k2)
        s2 = float(p.resize2_scale[0])
        out = interpolate(out, p.resize2_mode[0], size=(int(h / sf * s2), int(w / sf * s2)))
        out = _add_noise(out, p.noise2_type, p.noise2_sigma, p.noise2_poisson_scale, p.noise2_gray, g)
    # final: [resize + sinc] and JPEG in the drawn order
    size = (h // sf, w // sf)
    if p.final_order[0] == FINAL_ORDERS[0]:
        out = filter2d(interpolate(out, p.final_mode[0], size=size), p.sinc_kernel)
        out = jpeg(out, p.jpeg2_quality)
    else:
        out = jpeg(out, p.jpeg2_quality)
        out = filter2d(interpolate(out, p.final_mode[0], size=size), p.sinc_kernel)
    if cfg.resize_back:
        out = interpolate(out, "bicubic", size=(h, w))
    if cfg.round_output:
        out = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
    return out


def apply_degradation(
    hr: torch.Tensor, params: DegradationParams, generator: torch.Generator, config: DegradationConfig | None = None
) -> torch.Tensor:
    """Degrade ``hr`` with already drawn ``params``; ``generator`` supplies the noise fields."""
    cfg = config or DegradationConfig()
    _check(hr, cfg)
    if cfg.mode == "bicubic":
        return _bicubic(hr, cfg)
    if len(params) != hr.shape[0]:
        raise ValueError(f"params for {len(params)} images, batch of {hr.shape[0]}")
    groups: dict[tuple, list[int]] = {}
    for i in range(len(params)):
        groups.setdefault(_group_key(params, i), []).append(i)
    if len(groups) == 1:
        return _apply_group(hr, params, generator, cfg)
    outs, order = [], []
    for idx in groups.values():
        outs.append(_apply_group(hr[idx], params.subset(idx), generator, cfg))
        order.extend(idx)
    out = torch.cat(outs, 0)
    inv = torch.empty(len(order), dtype=torch.long)
    inv[torch.tensor(order)] = torch.arange(len(order))
    return out[inv.to(out.device)]


def _check(hr: torch.Tensor, cfg: DegradationConfig) -> None:
    if hr.dim() != 4 or hr.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) batch, got {tuple(hr.shape)}")
    if not hr.is_floating_point():
        raise TypeError(f"expected a float tensor in [0, 1], got {hr.dtype}")
    if hr.shape[-2] < cfg.sf or hr.shape[-1] < cfg.sf:
        raise ValueError(f"image {tuple(hr.shape[-2:])} smaller than sf={cfg.sf}")


def _bicubic(hr: torch.Tensor, cfg: DegradationConfig) -> torch.Tensor:
    out = bicubic_downsample(hr, cfg.sf, matlab=cfg.bicubic_matlab)
    if cfg.resize_back:
        out = interpolate(out, "bicubic", size=(hr.shape[-2], hr.shape[-1]))
    return out


def degrade_with_params(
    hr: torch.Tensor, generator: torch.Generator, config: DegradationConfig | None = None
) -> tuple[torch.Tensor, DegradationParams | None]:
    """Like :func:`degrade` but also returns the drawn :class:`DegradationParams` (None in bicubic mode)."""
    cfg = config or DegradationConfig()
    _check(hr, cfg)
    if cfg.use_sharp:
        hr = usm_sharp(hr)
    if cfg.mode == "bicubic":
        return _bicubic(hr, cfg), None
    params = sample_params(generator, hr.shape[0], cfg)
    return apply_degradation(hr, params, generator, cfg), params


@torch.no_grad()
def degrade(hr: torch.Tensor, generator: torch.Generator, config: DegradationConfig | None = None) -> torch.Tensor:
    """HR batch ``(B, 3, H, W)`` in [0, 1] -> LR batch ``(B, 3, H // sf, W // sf)`` (same device and dtype).

    The same generator state (and device) gives the same result.  ``bicubic`` mode ignores the generator.
    """
    return degrade_with_params(hr, generator, config)[0]


@torch.no_grad()
def degrade_pair(
    hr: torch.Tensor, generator: torch.Generator, config: DegradationConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lr, gt)``: the training pair.

    ``gt`` is ``usm_sharp(hr)`` when ``config.use_sharp`` (as published), else ``hr``."""
    cfg = config or DegradationConfig()
    gt = usm_sharp(hr) if cfg.use_sharp else hr
    lr = degrade(gt, generator, replace(cfg, use_sharp=False))
    return lr, gt

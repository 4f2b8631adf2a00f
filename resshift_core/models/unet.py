"""The ResShift denoiser: a UNet with residual blocks and Swin attention (published `UNetModelSwin`).

Module names reproduce the published state dict key for key (`input_blocks.4.1.blocks.0.attn.qkv`,
`middle_block.0.emb_layers.1`, `feature_extractor.2.op`, ...), so the released `.pth` files load
as they are. The computation matches the published forward; see `swin.py` for the dtype policy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArchitectureError, InputError
from .swin import GroupNorm32, SwinLayer, swin_window

NOISE_INJECTIONS = ("concat", "add")
LR_CHANNELS = 3  # the LR image is RGB


@dataclass
class UNetConfig:
    """Hyper-parameters, with the published names and defaults (`UNetModelSwin.__init__`).

    `use_fp16` is accepted and ignored (the caller picks the dtype); `dropout` only matters for
    training. Lists are normalised to tuples, `num_res_blocks` to one entry per level.
    """

    image_size: int
    in_channels: int
    model_channels: int
    out_channels: int
    num_res_blocks: int | Sequence[int]
    attention_resolutions: Sequence[int]
    dropout: float = 0.0
    channel_mult: Sequence[int | float] = (1, 2, 4, 8)
    conv_resample: bool = True
    dims: int = 2
    use_fp16: bool = False
    num_heads: int = 1
    num_head_channels: int = -1
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    swin_depth: int = 2
    swin_embed_dim: int = 96
    window_size: int = 8
    mlp_ratio: float = 2.0
    patch_norm: bool = False
    cond_lq: bool = True
    cond_mask: bool = False
    lq_size: int = 256
    # Ours, not published: fold r x r pixel blocks into channels before the input convolution
    # and unfold the prediction, so a pixel-space model runs its levels at 1/r resolution.
    pixel_unshuffle: int = 1
    # One-step students (RSD, Distilled-ResShift): a standard normal noise map of this many
    # channels at the latent size, either appended after the x and LR channels of the input
    # convolution ("concat", RSD's `noise_channels`) or mapped by its own 3x3 convolution
    # `noise_proj` and added after it ("add"). 0: no noise map (every ResShift and SinSR model).
    noise_channels: int = 0
    noise_injection: str = "concat"

    @property
    def blocks_per_level(self) -> tuple[int, ...]:
        """`num_res_blocks`, which __post_init__ stores as one entry per level."""
        return cast(tuple[int, ...], self.num_res_blocks)

    def __post_init__(self):
        self.channel_mult = tuple(self.channel_mult)
        levels = len(self.channel_mult)
        if levels == 0:
            raise ArchitectureError("channel_mult is empty: the UNet needs at least one level")
        if isinstance(self.num_res_blocks, int):
            self.num_res_blocks = (self.num_res_blocks,) * levels
        self.num_res_blocks = tuple(int(n) for n in self.num_res_blocks)
        if len(self.num_res_blocks) != levels:
            raise ArchitectureError(
                f"num_res_blocks {list(self.num_res_blocks)} has {len(self.num_res_blocks)} entries "
                f"but channel_mult {list(self.channel_mult)} has {levels} levels"
            )
        self.attention_resolutions = tuple(int(r) for r in self.attention_resolutions)
        if self.dims != 2:
            raise ArchitectureError(f"dims={self.dims}: only 2-D UNets (dims=2) are supported")
        if self.noise_injection not in NOISE_INJECTIONS:
            raise ArchitectureError(
                f"noise_injection {self.noise_injection!r}: choose one of {', '.join(NOISE_INJECTIONS)}"
            )
        if int(self.noise_channels) < 0:
            raise ArchitectureError(f"noise_channels must be 0 or more, got {self.noise_channels}")
        self.noise_channels = int(self.noise_channels)
        if self.noise_channels and int(self.pixel_unshuffle) != 1:
            raise ArchitectureError("a noise map input and pixel_unshuffle cannot be combined")
        if int(self.pixel_unshuffle) < 1:
            raise ArchitectureError(f"pixel_unshuffle must be 1 or more, got {self.pixel_unshuffle}")
        self.pixel_unshuffle = int(self.pixel_unshuffle)
        if self.num_head_channels != -1 and self.num_head_channels <= 0:
            raise ArchitectureError(f"num_head_channels must be -1 or positive, got {self.num_head_channels}")
        heads = self.swin_heads
        if heads <= 0 or self.swin_embed_dim % heads:
            raise ArchitectureError(
                f"swin_embed_dim {self.swin_embed_dim} cannot be split into {heads} attention heads"
            )
        if not self.cond_lq:
            raise ArchitectureError(
                "cond_lq=False is not supported: the published UNet adds the LR features to its input "
                "convolution either way, so it cannot run without the LR image"
            )
        ratio, rest = divmod(self.lq_size, self.image_size)
        if rest or not _is_power_of_two(ratio):
            raise ArchitectureError(
                f"lq_size {self.lq_size} must be image_size {self.image_size} times a power of two "
                "(the LR feature extractor halves the LR image that many times)"
            )

    # -- construction helpers ------------------------------------------------------------------
    @classmethod
    def from_published(cls, params: dict, *, noise_channels: int = 0) -> UNetConfig:
        """From the `params` of a published config (`model.params` in the ResShift YAML files).

        SinSR's and RSD's yamls count the concatenated LR image in `in_channels` (6 for a
        3-channel latent) and have no `lq_size` (the LR enters as is); ResShift's count only
        the latent and give `lq_size` (its default, 256, when absent). A config without
        `lq_size` whose `in_channels` exceeds `out_channels` by the LR's 3 channels is read the
        SinSR way. `noise_channels`: RSD's noise-map input (its yaml's `model.noise_channels`).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ArchitectureError(f"unknown UNet hyper-parameters {unknown}; expected a subset of {sorted(known)}")
        params = dict(params)
        counts_lr = (
            params.get("cond_lq", True)
            and "lq_size" not in params
            and params["in_channels"] == params["out_channels"] + LR_CHANNELS
        )
        if counts_lr:
            params["in_channels"] -= LR_CHANNELS
            params["lq_size"] = params["image_size"]
        if noise_channels:
            params["noise_channels"] = noise_channels
        return cls(**params)

    def to_dict(self) -> dict:
        """JSON-able; `UNetConfig(**d)` and `from_published(d)` give the config back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    # -- derived quantities --------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.channel_mult)

    @property
    def swin_heads(self) -> int:
        """Attention heads of every Swin layer (published rule: num_head_channels wins)."""
        if self.num_head_channels == -1:
            return self.num_heads
        return self.swin_embed_dim // self.num_head_channels

    @property
    def time_embed_dim(self) -> int:
        return 4 * self.model_channels

    @property
    def lq_downsamplings(self) -> int:
        """How many times the LR feature extractor halves the LR image (0: it is the identity)."""
        return round(math.log2(self.lq_size // self.image_size))

    @property
    def lq_feature_channels(self) -> int:
        """Channels the LR branch adds to the UNet input."""
        n = self.lq_downsamplings
        if n == 0:
            return 4 if self.cond_mask else 3
        return 16 * 2**n

    def level_resolutions(self) -> list[int]:
        """The published `ds` of each level: image_size (over pixel_unshuffle) halved (floor) once per level."""
        out, ds = [], self.image_size // self.pixel_unshuffle
        for _ in range(self.num_levels):
            out.append(ds)
            ds //= 2
        return out

    def swin_levels(self) -> list[int]:
        """Levels holding Swin layers (in the encoder/decoder, plus the last one for the middle)."""
        res = self.level_resolutions()
        levels = {level for level, ds in enumerate(res) if ds in self.attention_resolutions}
        levels.add(self.num_levels - 1)
        return sorted(levels)

    def swin_window_at(self, level: int) -> tuple[int, int]:
        """(window, shift of odd blocks) of the Swin layers at `level`."""
        return swin_window(self.level_resolutions()[level], self.window_size)

    @property
    def size_multiple(self) -> int:
        """Latent sides must be multiples of this (no padding happens inside the network).

        Each downsampling halves the map (the skips must line up again), and the window attention
        partitions every map it sees into whole windows: 2**level * window for each Swin level.
        """
        needs = [2 ** (self.num_levels - 1)]
        needs += [2**level * self.swin_window_at(level)[0] for level in self.swin_levels()]
        return math.lcm(*needs) * self.pixel_unshuffle

    def canonical(self) -> UNetConfig:
        """The same network with every field that does not change the computation normalised.

        This is what `detect_unet_config` reads back from the weights: unused attention
        resolutions dropped, heads spelled both ways, the window shrunk to the largest one used,
        resampling flags that have no effect set to their defaults, training-only fields zeroed.
        """
        levels = self.swin_levels()
        used = [(lvl, *self.swin_window_at(lvl)) for lvl in levels]
        window = max(w for _, w, _ in used)
        image_size = self.image_size
        no_shift_anywhere = self.swin_depth < 2
        if no_shift_anywhere and all(w == window for _, w, _ in used):
            # Nothing in the weights pins the resolution; this one gives the same windows.
            image_size = window * 2 ** (self.num_levels - 1) * self.pixel_unshuffle
        lq_size = image_size * 2**self.lq_downsamplings
        old_res = self.level_resolutions()
        new_res = replace(self, image_size=image_size, lq_size=lq_size).level_resolutions()
        attn = sorted({new_res[i] for i in range(self.num_levels) if old_res[i] in self.attention_resolutions})
        hidden = int(self.swin_embed_dim * self.mlp_ratio)
        ratio = hidden / self.swin_embed_dim
        single_level = self.num_levels == 1
        heads = self.swin_heads
        return replace(
            self,
            image_size=image_size,
            attention_resolutions=tuple(reversed(attn)),
            dropout=0.0,
            channel_mult=tuple(_plain_number(m) for m in self.channel_mult),
            conv_resample=True if (single_level or self.resblock_updown) else self.conv_resample,
            use_fp16=False,
            num_heads=heads,
            num_head_channels=self.swin_embed_dim // heads,
            resblock_updown=False if single_level else self.resblock_updown,
            window_size=window,
            mlp_ratio=_plain_number(ratio),
            lq_size=lq_size,
        )


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _plain_number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


def timestep_frequencies(dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """The sinusoid frequencies, computed on the CPU as the published code does (bit-identical)."""
    half = dim // 2
    return torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device="cpu") / half)


def timestep_embedding(
    timesteps: torch.Tensor, dim: int, max_period: float = 10000.0, freqs: torch.Tensor | None = None
) -> torch.Tensor:
    """Sinusoidal embedding [cos | sin] of (possibly fractional) timesteps, in fp32."""
    if freqs is None:
        freqs = timestep_frequencies(dim, max_period)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class Downsample(nn.Module):
    """Halve the resolution: stride-2 3x3 convolution (`op`), or 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or channels
        self.op: nn.Module
        if use_conv:
            self.op = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)
        elif out_channels != channels:
            raise ArchitectureError("average-pool downsampling cannot change the channel count")
        else:
            self.op = nn.AvgPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double the resolution (nearest), then an optional 3x3 convolution (`conv`)."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1) if use_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x if self.conv is None else self.conv(x)


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding (add, or FiLM scale/shift)."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        resample: str | None = None,  # None, "up" or "down": resample inside, between norm and conv
        dropout: float = 0.0,
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.resample = resample
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        # Published rule: identity when the width is unchanged, else a 1x1 convolution.
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.avg_pool2d(x, 2)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # Outside autograd the intermediates this block made itself are updated in place (the
        # same values, one full-size allocation and pass fewer each).
        inplace = not torch.is_grad_enabled()
        norm, _, conv = self.in_layers
        h = F.silu(norm(x), inplace=inplace)
        if self.resample is not None:
            h, x = self._resample(h), self._resample(x)
        h = conv(h)
        cond = self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        norm, _, drop, conv = self.out_layers
        if self.use_scale_shift_norm:
            scale, shift = cond.chunk(2, dim=1)
            h = torch.addcmul(shift, norm(h), 1 + scale)  # norm(h) * (1 + scale) + shift, one pass
        else:
            h = norm(h.add_(cond) if inplace else h + cond)
        h = conv(drop(F.silu(h, inplace=inplace)))
        skip = self.skip_connection(x)
        return h.add_(skip) if inplace else skip + h


def _zero_conv(module: nn.Module) -> None:
    conv = cast(nn.Conv2d, module)
    conv.weight.zero_()
    if conv.bias is not None:
        conv.bias.zero_()


class EmbedSequential(nn.Sequential):
    """Sequential whose residual blocks also receive the timestep embedding."""

    # Sequential.forward takes one input; this one also takes the embedding (the published TimestepEmbedSequential).
    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


class ResShiftUNet(nn.Module):
    """`forward(x, timesteps, lq=None, mask=None)` -> prediction with x's shape.

    Runs in the dtype of its weights (cast the module with `.to()`); inputs are cast to it and
    the output is returned in x's dtype. Latent sides must be multiples of `size_multiple`.
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        emb_dim = cfg.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(cfg.model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.feature_extractor = self._lq_feature_extractor(cfg)

        def res_block(ch_in, ch_out=None, resample=None):
            return ResBlock(ch_in, emb_dim, ch_out, cfg.use_scale_shift_norm, resample, cfg.dropout)

        def swin(ch, ds):
            heads, depth = cfg.swin_heads, cfg.swin_depth
            return SwinLayer(ch, cfg.swin_embed_dim, heads, cfg.window_size, depth, ds, cfg.mlp_ratio, cfg.patch_norm)

        width = [int(m * cfg.model_channels) for m in cfg.channel_mult]
        res = cfg.level_resolutions()
        ch = width[0]
        fold = cfg.pixel_unshuffle**2
        concat_noise = cfg.noise_channels if cfg.noise_injection == "concat" else 0
        conv_in = (cfg.in_channels + cfg.lq_feature_channels + concat_noise) * fold
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(conv_in, ch, 3, padding=1))])
        if cfg.noise_channels and cfg.noise_injection == "add":
            self.noise_proj = nn.Conv2d(cfg.noise_channels, ch, 3, padding=1)
        skip_widths = [ch]
        for level in range(cfg.num_levels):
            for i in range(cfg.blocks_per_level[level]):
                layers = [res_block(ch, width[level])]
                ch = width[level]
                if i == 0 and res[level] in cfg.attention_resolutions:
                    layers.append(swin(ch, res[level]))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_widths.append(ch)
            if level != cfg.num_levels - 1:
                down = res_block(ch, resample="down") if cfg.resblock_updown else Downsample(ch, cfg.conv_resample)
                self.input_blocks.append(EmbedSequential(down))
                skip_widths.append(ch)

        self.middle_block = EmbedSequential(res_block(ch), swin(ch, res[-1]), res_block(ch))

        self.output_blocks = nn.ModuleList()
        for level in reversed(range(cfg.num_levels)):
            for i in range(cfg.blocks_per_level[level] + 1):
                layers = [res_block(ch + skip_widths.pop(), width[level])]
                ch = width[level]
                if i == 0 and res[level] in cfg.attention_resolutions:
                    layers.append(swin(ch, res[level]))
                if level and i == cfg.blocks_per_level[level]:
                    up = res_block(ch, resample="up") if cfg.resblock_updown else Upsample(ch, cfg.conv_resample)
                    layers.append(up)
                self.output_blocks.append(EmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(width[0], cfg.out_channels * fold, 3, padding=1))
        if cfg.pixel_unshuffle > 1:
            # In the state dict, so the weights alone say how they fold pixels (detection reads it).
            self.register_buffer("pixel_unshuffle", torch.tensor(cfg.pixel_unshuffle, dtype=torch.int64))
        self._freqs: dict = {}  # timestep frequencies per device (derived, not part of the state dict)

    @staticmethod
    def _lq_feature_extractor(cfg: UNetConfig) -> nn.Module:
        """Bring the LR image (plus mask) to latent resolution: (conv, SiLU, stride-2 conv) per halving."""
        n = cfg.lq_downsamplings
        if n == 0:
            return nn.Identity()
        layers, ch_in, ch = [], 4 if cfg.cond_mask else 3, 16
        for _ in range(n):
            layers += [nn.Conv2d(ch_in, ch, 3, padding=1), nn.SiLU(), Downsample(ch, True, out_channels=2 * ch)]
            ch_in = ch = 2 * ch
        return nn.Sequential(*layers)

    @property
    def dtype(self) -> torch.dtype:
        return self._time_linears()[0].weight.dtype

    def _time_linears(self) -> tuple[nn.Linear, nn.Linear]:
        first, _, second = self.time_embed
        return cast(nn.Linear, first), cast(nn.Linear, second)

    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    @torch.no_grad()
    def init_as_published(self) -> ResShiftUNet:
        """Zero the last convolution of every residual block and of the output head, as the
        published constructor does (`zero_module`): each block starts as the identity and the
        network's first prediction is 0. For training from scratch; loading replaces it all."""
        for module in self.modules():
            if isinstance(module, ResBlock):
                _zero_conv(module.out_layers[-1])
        _zero_conv(self.out[-1])
        return self

    def _check_noise(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor | None:
        want = self.config.noise_channels
        if not want:
            if noise is not None:
                raise InputError("this UNet takes no noise map (it is no noise-injecting student): do not pass noise=")
            return None
        if noise is None:
            raise InputError(f"this one-step student takes a {want}-channel noise map: pass noise=")
        if tuple(noise.shape) != (x.shape[0], want, *x.shape[-2:]):
            raise InputError(
                f"the noise map is {tuple(noise.shape)} but must be {(x.shape[0], want, *x.shape[-2:])} "
                "(batch, noise channels, the latent's size)"
            )
        return noise

    def _check_inputs(self, x: torch.Tensor, lq: torch.Tensor | None, mask: torch.Tensor | None) -> torch.Tensor:
        """Raise InputError unless the inputs fit this network; the LR image, known to be given."""
        cfg = self.config
        if x.ndim != 4:
            raise InputError(f"x must be a (batch, channels, height, width) tensor, got shape {tuple(x.shape)}")
        m = self.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise InputError(
                f"latent size {x.shape[-2]}x{x.shape[-1]} is not a multiple of {m}, which this UNet "
                f"needs (downsampling and attention windows); pad the input to a multiple of {m}"
            )
        if lq is None:
            raise InputError("this UNet is conditioned on the low-quality image: pass lq= (and mask= to inpaint)")
        if cfg.cond_mask and mask is None:
            raise InputError("this UNet (inpainting) needs the mask: pass mask= along with lq=")
        if mask is not None and not cfg.cond_mask:
            raise InputError("this UNet takes no mask (it is not an inpainting model); do not pass mask=")
        factor = 2**cfg.lq_downsamplings
        if tuple(lq.shape[-2:]) != (x.shape[-2] * factor, x.shape[-1] * factor):
            raise InputError(
                f"lq is {lq.shape[-2]}x{lq.shape[-1]} but must be {factor}x the latent "
                f"{x.shape[-2]}x{x.shape[-1]}, i.e. {x.shape[-2] * factor}x{x.shape[-1] * factor}"
            )
        return lq

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        lq: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lq = self._check_inputs(x, lq, mask)
        noise = self._check_noise(x, noise)
        dtype = self.dtype
        timesteps = torch.as_tensor(timesteps, device=x.device).reshape(-1).expand(x.shape[0])
        emb = self._time_embedding(timesteps).to(dtype)
        if mask is not None:
            lq = torch.cat([lq, mask.to(lq.dtype)], dim=1)
        parts = [x.to(dtype), self.feature_extractor(lq.to(dtype))]
        if noise is not None and self.config.noise_injection == "concat":
            parts.append(noise.to(dtype))  # after x and the LR, as RSD widened the first conv
        h = torch.cat(parts, dim=1)
        fold = self.config.pixel_unshuffle
        if fold > 1:
            h = F.pixel_unshuffle(h, fold)

        skips = []
        for i, block in enumerate(self.input_blocks):
            h = block(h, emb)
            if i == 0 and noise is not None and self.config.noise_injection == "add":
                h = h + self.noise_proj(noise.to(dtype))
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        h = self.out(h)
        if fold > 1:
            h = F.pixel_shuffle(h, fold)
        return h.to(x.dtype)

    def _time_embedding(self, timesteps: torch.Tensor) -> torch.Tensor:
        """The timestep MLP in fp32 whatever the model dtype: a few rows, and half-precision models
        then get the published embedding up to one final rounding."""
        first, second = self._time_linears()
        act = self.time_embed[1]
        device = timesteps.device
        freqs = None if torch.compiler.is_compiling() else self._freqs.get(device)
        if freqs is None:  # once per device: no host-to-device copy per step (CUDA-graph friendly)
            freqs = timestep_frequencies(self.config.model_channels).to(device)
            if not torch.compiler.is_compiling():
                self._freqs[device] = freqs
        t = timestep_embedding(timesteps, self.config.model_channels, freqs=freqs)
        t = F.linear(t, first.weight.float(), first.bias.float())
        return F.linear(act(t), second.weight.float(), second.bias.float())

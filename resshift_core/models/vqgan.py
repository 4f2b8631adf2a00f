"""The VQGAN autoencoder ResShift diffuses in (published `ldm/models/autoencoder.py` VQModelTorch).

    encode(x)   = quant_conv(encoder(x))                  -> z, not quantised (ResShift's z_y)
    decode(z)   = decoder(post_quant_conv(quantize(z)))   -> image in [-1, 1]

State dict keys reproduce the published ones (`encoder.down.0.block.1.conv2.weight`,
`quantize.embedding.weight`, `post_quant_conv.bias`, ...), so the released `.pth` files load as
they are.

Dtypes and layout (our choices):
* The network computes in `compute_dtype`: the parameters' dtype, except that float16/bfloat16
  weights on a CPU without native half-precision kernels (oneDNN reports none on AVX2-only
  CPUs, where a bf16 conv runs ~30x slower than fp32) compute in float32; the weights are cast
  per layer, so they still take half the memory. Set `upcast_half_on_cpu` to force either way.
* On the CPU the activations are always channels_last (oneDNN's fast layout); results come back
  in the dtype and memory format of the input.
* GroupNorm statistics are float32 and cancellation-free in every dtype (see vqgan_blocks).
* Quantisation distances are float32 even for half inputs: in half precision near ties between
  codebook entries flip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArchitectureError, InputError
from .autograd_free import records_no_graph
from .vqgan_blocks import GROUPS, Conv2d, Decoder, Encoder

# Options of the published Encoder/Decoder that would change the network; the values we support.
_FIXED_PUBLISHED_OPTIONS = {
    "resamp_with_conv": True,
    "give_pre_end": False,
    "tanh_out": False,
    "use_linear_attn": False,
}
_SUPPORTED_ATTN_TYPES = ("vanilla", "vanilla-xformers")  # the same attention, two kernels


@dataclass
class VQGANConfig:
    """Hyper-parameters with the published names (`embed_dim`, `n_embed` and the `ddconfig` fields).

    `num_res_blocks` may be given as one int or one entry per level; it is stored per level.
    `resolution` is the training image size: it only decides, together with
    `attn_resolutions`, which levels carry attention (a level at `resolution / 2**level`
    pixels gets it when that number is listed); it plays no part in the computation otherwise.
    `padding_mode` is accepted and ignored, as the published code ignores it (zero padding).
    `dropout` only matters in training.
    """

    embed_dim: int
    n_embed: int
    z_channels: int
    ch: int = 128
    ch_mult: Sequence[int] = (1, 2, 4)
    num_res_blocks: int | Sequence[int] = 2
    attn_resolutions: Sequence[int] = ()
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    double_z: bool = False
    dropout: float = 0.0
    padding_mode: str = "zeros"

    @property
    def blocks_per_level(self) -> tuple[int, ...]:
        """`num_res_blocks`, which __post_init__ stores as one entry per level."""
        return cast(tuple[int, ...], self.num_res_blocks)

    def __post_init__(self):
        self.ch_mult = tuple(int(m) for m in self.ch_mult)
        if not self.ch_mult:
            raise ArchitectureError("ch_mult is empty: the VQGAN needs at least one level")
        if isinstance(self.num_res_blocks, int):
            self.num_res_blocks = (self.num_res_blocks,) * len(self.ch_mult)
        self.num_res_blocks = tuple(int(n) for n in self.num_res_blocks)
        if len(self.num_res_blocks) != len(self.ch_mult):
            raise ArchitectureError(
                f"num_res_blocks has {len(self.num_res_blocks)} entries but ch_mult has "
                f"{len(self.ch_mult)} levels: give one int or one entry per level"
            )
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)
        self.double_z = bool(self.double_z)
        for name in ("embed_dim", "n_embed", "z_channels", "ch", "resolution", "in_channels", "out_ch"):
            if int(getattr(self, name)) < 1:
                raise ArchitectureError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if min(self.ch_mult) < 1 or min(self.num_res_blocks) < 0:
            raise ArchitectureError(f"bad ch_mult {self.ch_mult} or num_res_blocks {self.num_res_blocks}")
        bad = [w for w in self.widths if w % GROUPS]
        if bad:
            raise ArchitectureError(
                f"feature widths {self.widths} (ch x ch_mult) must be multiples of {GROUPS} for "
                f"GroupNorm; {bad} are not"
            )

    # -- published format ------------------------------------------------------------------
    @classmethod
    def from_published(cls, params: dict) -> VQGANConfig:
        """From the published `params` ({embed_dim, n_embed, ddconfig: {...}}) or our flat `to_dict()`."""
        if "ddconfig" not in params:
            return cls.from_dict(params)
        if params.get("remap") is not None:
            raise ArchitectureError("codebook remapping (remap=...) is not supported")
        dd = dict(params["ddconfig"])
        for key, supported in _FIXED_PUBLISHED_OPTIONS.items():
            if key in dd and bool(dd[key]) != supported:
                raise ArchitectureError(f"ddconfig {key}={dd[key]!r} is not supported (only {supported})")
        if dd.get("attn_type", "vanilla") not in _SUPPORTED_ATTN_TYPES:
            raise ArchitectureError(f"attn_type {dd['attn_type']!r} is not supported (only 'vanilla')")
        known = {f.name for f in fields(cls)}
        # Like the published Encoder/Decoder (**ignore_kwargs), other ddconfig keys are ignored.
        kwargs = {k: v for k, v in dd.items() if k in known}
        return cls(embed_dim=int(params["embed_dim"]), n_embed=int(params["n_embed"]), **kwargs)

    def to_published(self) -> dict:
        """The published `params` layout: {embed_dim, n_embed, ddconfig: {...}}."""
        flat = self.to_dict()
        top = {"embed_dim": flat.pop("embed_dim"), "n_embed": flat.pop("n_embed")}
        return {**top, "ddconfig": flat}

    @classmethod
    def from_dict(cls, d: dict) -> VQGANConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ArchitectureError(f"unknown VQGAN config keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict:
        """Flat and JSON-able; `from_dict` (or `from_published`) gives back an equal config."""
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d

    # -- derived ---------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return len(self.ch_mult)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.ch * m for m in self.ch_mult)

    @property
    def downsample_factor(self) -> int:
        """Image pixels per latent pixel along a side: 4 for f4, 8 for f8."""
        return 2 ** (self.num_levels - 1)

    @property
    def latent_channels(self) -> int:
        return self.embed_dim

    @property
    def encoder_attn_levels(self) -> tuple[bool, ...]:
        """Which encoder levels have attention (the published test: halve from `resolution`)."""
        res, out = self.resolution, []
        for _ in range(self.num_levels):
            out.append(res in self.attn_resolutions)
            res //= 2
        return tuple(out)

    @property
    def decoder_attn_levels(self) -> tuple[bool, ...]:
        """The decoder's (the published test: double from resolution // 2**(levels-1))."""
        res = self.resolution // self.downsample_factor
        out = [False] * self.num_levels
        for level in reversed(range(self.num_levels)):
            out[level] = res in self.attn_resolutions
            res *= 2
        return tuple(out)

    def architecture(self) -> tuple:
        """Everything that shapes the network (not resolution/attn_resolutions as numbers, dropout)."""
        return (
            self.embed_dim,
            self.n_embed,
            self.z_channels,
            self.double_z,
            self.in_channels,
            self.out_ch,
            self.widths,
            self.num_res_blocks,
            self.encoder_attn_levels,
            self.decoder_attn_levels,
        )

    def same_architecture(self, other: VQGANConfig) -> bool:
        """Whether both configs build the same network (same state dict layout and function)."""
        return self.architecture() == other.architecture()


@cache
def cpu_has_native_half(dtype: torch.dtype) -> bool:
    """Whether oneDNN has real bf16/fp16 kernels on this CPU (AVX512-BF16/AMX/AVX512-FP16)."""
    try:
        if dtype == torch.bfloat16:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        if dtype == torch.float16:
            return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        pass
    return False


class VectorQuantizer(nn.Module):
    """Nearest-codebook-entry quantiser (published VectorQuantizer2, inference part)."""

    # Bound on the (pixels x codes) distance block: on the CPU 1M floats (4 MiB, stays in cache,
    # 32 blocks for a 64x64 latent and 8192 codes); elsewhere 16M (64 MiB), few enough blocks
    # that kernel launches do not dominate.
    max_block_elements = 1 << 20
    max_block_elements_accelerator = 1 << 24

    def __init__(self, n_embed: int, embed_dim: int):
        super().__init__()
        self.n_embed, self.embed_dim = n_embed, embed_dim
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)  # published init

    def indices(self, h: torch.Tensor) -> torch.Tensor:
        """(B, H, W) index of the nearest codebook entry for each pixel of h (B, embed_dim, H, W)."""
        b, c, height, width = h.shape
        z = h.permute(0, 2, 3, 1).reshape(-1, c).float()
        codebook = self.embedding.weight.float()
        code_sq = codebook.square().sum(dim=1)
        out = torch.empty(z.shape[0], dtype=torch.long, device=h.device)
        budget = self.max_block_elements if h.device.type == "cpu" else self.max_block_elements_accelerator
        rows = max(1, budget // self.n_embed)
        for start in range(0, z.shape[0], rows):
            zc = z[start : start + rows]
            # (|z|^2 + |e|^2) - 2 z.e: the published formula, bit for bit (the -2 scaling is
            # exact), so near-ties break the same way; addmm_ saves a pass over the block.
            dist = zc.square().sum(dim=1, keepdim=True) + code_sq
            dist.addmm_(zc, codebook.t(), alpha=-2)
            out[start : start + rows] = dist.argmin(dim=1)
        return out.view(b, height, width)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook entries for (B, H, W) indices, as (B, embed_dim, H, W) (a channels_last view)."""
        return F.embedding(indices, self.embedding.weight).permute(0, 3, 1, 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h with each pixel replaced by its nearest codebook entry; same shape, dtype and layout."""
        if h.dim() != 4 or h.shape[1] != self.embed_dim:
            raise InputError(f"quantize expects (B, {self.embed_dim}, H, W) latents, got {tuple(h.shape)}")
        quantized = self.lookup(self.indices(h)).to(h.dtype)
        if not records_no_graph(h):
            quantized = h + (quantized - h).detach()  # straight-through gradient, as published
        return quantized.contiguous(memory_format=_memory_format(h))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class VQGAN(nn.Module):
    """Encoder, quant_conv, codebook, post_quant_conv, decoder. Images in [-1, 1], NCHW."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        self.config = config
        blocks = config.blocks_per_level
        self.encoder = Encoder(
            in_channels=config.in_channels,
            ch=config.ch,
            ch_mult=config.ch_mult,
            blocks_per_level=blocks,
            attn_levels=config.encoder_attn_levels,
            z_channels=config.z_channels,
            double_z=config.double_z,
            dropout=config.dropout,
        )
        self.decoder = Decoder(
            out_ch=config.out_ch,
            ch=config.ch,
            ch_mult=config.ch_mult,
            blocks_per_level=blocks,
            attn_levels=config.decoder_attn_levels,
            z_channels=config.z_channels,
            dropout=config.dropout,
        )
        self.quantize = VectorQuantizer(config.n_embed, config.embed_dim)
        # The published quant_conv reads z_channels even when double_z widens the encoder output.
        self.quant_conv = Conv2d(config.z_channels, config.embed_dim, 1)
        self.post_quant_conv = Conv2d(config.embed_dim, config.z_channels, 1)
        # None: decide from the CPU (see module doc); True/False: force fp32 / native half compute.
        self.upcast_half_on_cpu: bool | None = None

    @property
    def dtype(self) -> torch.dtype:
        return self.quant_conv.weight.dtype

    @property
    def downsample_factor(self) -> int:
        return self.config.downsample_factor

    def compute_dtype(self, device: torch.device | str) -> torch.dtype:
        """The dtype activations are computed in for inputs on `device`."""
        dtype = self.dtype
        if dtype in (torch.float16, torch.bfloat16) and torch.device(device).type == "cpu":
            upcast = self.upcast_half_on_cpu
            if upcast is None:
                upcast = not cpu_has_native_half(dtype)
            if upcast:
                return torch.float32
        return dtype

    def _enter(self, x: torch.Tensor, channels: int, what: str) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != channels:
            raise InputError(f"{what} expects (B, {channels}, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"{what} expects a floating-point tensor, got {x.dtype}")
        # On the CPU channels_last is always the fast layout (oneDNN); elsewhere keep the caller's.
        layout = torch.channels_last if x.device.type == "cpu" else _memory_format(x)
        return x.to(dtype=self.compute_dtype(x.device), memory_format=layout)

    @staticmethod
    def _leave(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return out.to(dtype=like.dtype, memory_format=_memory_format(like))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Image (B, in_channels, H, W) in [-1, 1] -> latent (B, embed_dim, H/f, W/f), not quantised."""
        if self.config.double_z:
            raise ArchitectureError(
                "this autoencoder has double_z=True: its encoder outputs 2 x z_channels, which the "
                "VQ quant_conv cannot take (the published VQModelTorch fails the same way)"
            )
        h = self.encoder(self._enter(x, self.config.in_channels, "encode"))
        return self._leave(self.quant_conv(h), x)

    def decode(self, h: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        """Latent (B, embed_dim, h, w) -> image (B, out_ch, f*h, f*w); snap to the codebook first if `quantize`."""
        z = self._enter(h, self.config.embed_dim, "decode")
        if quantize:
            z = self.quantize(z)
        return self._leave(self.decoder(self.post_quant_conv(z)), h)

    def forward(self, x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        return self.decode(self.encode(x), quantize=quantize)

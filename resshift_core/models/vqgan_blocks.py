"""Layers of the LDM VQGAN encoder and decoder (published `ldm/modules/diffusionmodules/model.py`).

Attribute names reproduce the published state dict (`down.1.block.0.nin_shortcut`,
`mid.attn_1.proj_out`, `up.2.upsample.conv`, ...); the computation is our own and matches the
published forward up to float rounding.

Speed (inference on the CPU dominates the whole restoration chain):
* every layer works in `channels_last` without copies: the attention reads its tokens as a view
  of the NHWC memory, and GroupNorm keeps the layout (with our own accurate statistics: torch's
  channels-last GroupNorm kernel loses precision, see `_group_norm_channels_last`);
* "nearest x2 upsample, then 3x3 conv" runs as one stride-2 transposed 4x4 conv whose taps are
  sums of the 3x3 taps: the same function with 16/36 of the multiply-adds and no 4x-sized
  intermediate;
* the mid-block attention (one head of 512 channels) runs on the CPU as float32 score matmuls
  over bands of query rows (`pixel_attention`): torch's CPU flash kernel reaches under half the
  GEMM rate at that head width; elsewhere, and compiled, `scaled_dot_product_attention`;
* activations are updated in place when no autograd graph is being recorded.

Dtypes: a layer computes in the dtype of its input and casts its own parameters to it (a no-op
when they already match). The VQGAN decides that dtype (see `VQGAN.compute_dtype`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .autograd_free import records_no_graph
from .cpu_matmul import linear
from .derived import DerivedCache

GROUPS = 32
NORM_EPS = 1e-6  # the published Normalize()
# Elements per slice when GroupNorm sums squared deviations slice by slice: 8 MiB in float32
# stays in L3, and few slices keep the op count low (each op is a parallel region, costly when
# the cores are oversubscribed).
_MOMENT_SLICE = 1 << 21


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _channel_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(sample, channel) mean and sum of squared deviations of an NHWC tensor, in float32.

    Shifted sums: deviations from a rough centre (the mean of a 1/16 subsample) are summed with
    their squares, so a large mean never cancels against the variance; the exact mean and
    spread follow from the two sums. Slices of rows keep the float32 temporaries in cache.
    """
    n, c, h, w = x.shape
    center = x[:, :, ::4, ::4].float().mean(dim=(2, 3), keepdim=True)
    sum_dev = x.new_zeros((n, c), dtype=torch.float32)
    sum_sq = x.new_zeros((n, c), dtype=torch.float32)
    rows = max(1, _MOMENT_SLICE // max(1, w * c))
    for top in range(0, h, rows):
        part = x[:, :, top : top + rows]
        # Same-dtype ops only: torch's mixed bf16/fp32 elementwise kernels are ~10x slower.
        dev = part - center if part.dtype == torch.float32 else part.float().sub_(center)
        sum_dev += dev.sum(dim=(2, 3))
        sum_sq += dev.square_().sum(dim=(2, 3))
    pixels = h * w
    mean = center.view(n, c) + sum_dev / pixels
    return mean, sum_sq - sum_dev.square() / pixels


def _group_norm_channels_last(x, num_groups, weight, bias, eps, inplace=False):
    """GroupNorm of an NHWC tensor with float32, cancellation-free statistics.

    torch's CPU channels-last kernel takes the variance as E[x^2] - E[x]^2 summed naively in
    the input dtype: errors of 1e-4 at 256x256 in float32 when a group's mean is a few times its
    spread, and garbage in bfloat16. Here the per-channel moments are exact enough and combine
    into group moments (Chan's formula); the normalisation is one x * scale + shift pass in
    float32 (two same-dtype passes in half precision), written in place when allowed.
    """
    n, c, h, w = x.shape
    per_group = c // num_groups
    hw = h * w
    mean_c, sq_dev_c = _channel_moments(x)
    mean_c = mean_c.view(n, num_groups, per_group)
    mean_g = mean_c.mean(dim=2, keepdim=True)
    spread = sq_dev_c.view(n, num_groups, per_group).sum(dim=2, keepdim=True)
    spread += hw * (mean_c - mean_g).square().sum(dim=2, keepdim=True)
    rstd = (spread / (hw * per_group) + eps).rsqrt()
    scale = rstd * weight.float().view(1, num_groups, per_group)  # n, g, c/g
    shift = bias.float().view(1, num_groups, per_group) - mean_g * scale
    scale, shift = scale.view(n, c, 1, 1), shift.view(n, c, 1, 1)
    if not records_no_graph(x, scale):
        return torch.addcmul(shift, x.float(), scale).to(x.dtype)  # out= records no gradient
    out = x if inplace else torch.empty_like(x)
    if x.dtype == torch.float32:
        return torch.addcmul(shift, x, scale, out=out)
    # Half dtypes: same-dtype ops only (torch's mixed bf16/fp32 kernels are ~15x slower), and no
    # cancellation: subtract the group mean rounded to the dtype (x - centre is rounded relative
    # to the deviation, not to the mean), fold its rounding error into the shift, then scale.
    centre = mean_g.expand(n, num_groups, per_group).reshape(n, c, 1, 1).to(x.dtype)
    shift = shift + centre.float() * scale  # (x - centre) * scale + shift == x * scale + old shift
    torch.sub(x, centre, out=out)
    return torch.addcmul(shift.to(x.dtype), out, scale.to(x.dtype), out=out)


def group_norm(
    x: torch.Tensor, num_groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float, inplace: bool = False
) -> torch.Tensor:
    """F.group_norm, accurate in channels_last on the CPU too; `inplace` may overwrite x (CPU NHWC)."""
    if torch.compiler.is_compiling():
        # Inductor fuses F.group_norm into float32 Welford reductions (accurate in any layout and
        # dtype); the hand-written path below would break the graph (out=) and unroll its row
        # loop per input height, compiling anew for every size.
        return F.group_norm(x.float(), num_groups, weight.float(), bias.float(), eps).to(x.dtype)
    if x.device.type == "cpu" and _is_channels_last(x):
        return _group_norm_channels_last(x, num_groups, weight, bias, eps, inplace and records_no_graph(x))
    # NCHW on the CPU (Welford) and CUDA (fp32 accumulation for half inputs) are accurate.
    return F.group_norm(x, num_groups, weight.to(x.dtype), bias.to(x.dtype), eps)


class GroupNorm(nn.GroupNorm):
    """The published Normalize(): 32 groups, eps 1e-6, affine; optionally followed by SiLU."""

    def __init__(self, channels: int):
        super().__init__(GROUPS, channels, eps=NORM_EPS, affine=True)

    def forward(self, x: torch.Tensor, silu: bool = False, inplace: bool = False) -> torch.Tensor:
        """`inplace`: x is not needed afterwards, so its memory may be reused (saves an allocation)."""
        out = group_norm(x, self.num_groups, self.weight, self.bias, self.eps, inplace)
        return F.silu(out, inplace=records_no_graph(out)) if silu else out


class Conv2d(nn.Conv2d):
    """nn.Conv2d that runs in its input's dtype (the parameters follow)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return self._conv_forward(x, self.weight.to(x.dtype), bias)


def conv1x1_tokens(conv: nn.Conv2d, tokens: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv applied to (B, N, C) tokens: a plain matmul, no layout change."""
    weight = conv.weight.to(tokens.dtype).flatten(1)
    bias = None if conv.bias is None else conv.bias.to(tokens.dtype)
    return linear(tokens, weight, bias)


class ResnetBlock(nn.Module):
    """GN-SiLU-conv twice plus a (1x1 when the width changes) shortcut; no time embedding."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = GroupNorm(in_channels)
        self.conv1 = Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = GroupNorm(out_channels)
        self.dropout = nn.Dropout(dropout)  # no parameters; only active in training
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.norm1(x, silu=True))
        h = self.conv2(self.dropout(self.norm2(h, silu=True, inplace=True)))
        skip = self.nin_shortcut(x) if self.in_channels != self.out_channels else x
        return h.add_(skip) if records_no_graph(h) else h + skip


# Scores held at once by `pixel_attention` (16 MiB in float32): a band of query rows against
# every key, so a large tile never builds the whole HW x HW matrix.
ATTENTION_SCORE_ELEMENTS = 1 << 22


def pixel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(C)) v for (B, N, C) tokens, a band of query rows at a time.

    Scores and softmax are float32 whatever the dtype (a bf16 logit of 25 rounds to a multiple
    of 1/8, moving its weight by up to 6%); the probabilities meet v in v's dtype, as the flash
    kernels do.
    Outside autograd only (the bands are written into one output).
    """
    batch, n, channels = q.shape
    scale = channels**-0.5
    keys = k.float()  # one upcast for every band
    values_t = v.transpose(1, 2).contiguous()  # B, C, N: `linear` takes (out, in) weights
    out = torch.empty_like(q)
    rows = max(1, ATTENTION_SCORE_ELEMENTS // n)
    for b in range(batch):
        for top in range(0, n, rows):
            band = slice(top, top + rows)
            scores = linear(q[b, band].float(), keys[b]).mul_(scale)  # q k^T
            probs = torch.softmax(scores, dim=-1).to(v.dtype)
            out[b, band] = linear(probs, values_t[b])  # probs v
    return out


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels (see `pixel_attention`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = GroupNorm(channels)
        self.q = Conv2d(channels, channels, 1)
        self.k = Conv2d(channels, channels, 1)
        self.v = Conv2d(channels, channels, 1)
        self.proj_out = Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        # B, H, W, C -> B, HW, C: a view when x is channels_last, one copy otherwise.
        tokens = self.norm(x).permute(0, 2, 3, 1).reshape(b, height * width, c)
        q, k, v = (conv1x1_tokens(conv, tokens) for conv in (self.q, self.k, self.v))
        if x.device.type == "cpu" and not torch.compiler.is_compiling() and records_no_graph(q):
            out = pixel_attention(q, k, v)
        else:
            out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None]).squeeze(1)
        out = conv1x1_tokens(self.proj_out, out)
        out = out.view(b, height, width, c).permute(0, 3, 1, 2)  # NCHW view of NHWC memory
        return out.add_(x) if records_no_graph(out) else out + x


class Downsample(nn.Module):
    """3x3 stride-2 conv after padding only the bottom and right by one (the published scheme)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


# Nearest x2 then a 3x3 conv (padding 1): output row 2i+a, tap t, reads input row (2i+a-1+t)//2.
# A stride-2, padding-1 transposed conv gives output row o input row j through its tap
# k = o + 1 - 2j. Matching the two, each of the 4 transposed taps k sums some of the 3 taps t:
_UPSAMPLE_TAPS = ((3, 0), (1, 1), (1, 2), (2, 0), (2, 1), (0, 2))  # (k, t): k sums these t


def upsample_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) conv weight -> the equivalent (C_in, C_out, 4, 4) transposed-conv weight."""
    fold = weight.new_zeros((4, 3), dtype=torch.float32)
    for k, t in _UPSAMPLE_TAPS:
        fold[k, t] = 1.0
    # Sum in float32 so half-precision weights round once, after the sum.
    w4 = torch.einsum("kt,lu,oitu->iokl", fold, fold, weight.float())
    return w4.contiguous(memory_format=torch.channels_last)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv, computed as one transposed conv (see module doc)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = Conv2d(channels, channels, 3, padding=1)
        self._folded = DerivedCache()  # the 4x4 kernel, folded once rather than per call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source = self.conv.weight
        weight = self._folded.get(source, x.device, x.dtype, lambda: upsample_conv_weight(source).to(x.dtype))
        bias = None if self.conv.bias is None else self.conv.bias.to(x.dtype)
        return F.conv_transpose2d(x, weight, bias, stride=2, padding=1)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The published two-step form, for tests."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    def __init__(self, channels: int, dropout: float):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Level(nn.Module):
    """One resolution: `block` (ResnetBlocks), `attn` (one per block, or none), then a resampler."""

    def __init__(self, widths: Sequence[int], dropout: float, with_attn: bool, resample: str | None):
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(a, b, dropout) for a, b in itertools.pairwise(widths))
        self.attn = nn.ModuleList(AttnBlock(b) for b in widths[1:]) if with_attn else nn.ModuleList()
        if resample == "down":
            self.downsample = Downsample(widths[-1])
        elif resample == "up":
            self.upsample = Upsample(widths[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        resample = getattr(self, "downsample", None) or getattr(self, "upsample", None)
        return x if resample is None else resample(x)


class Encoder(nn.Module):
    """conv_in, `down` levels (each but the last halves the size), mid, GN-SiLU, conv_out."""

    def __init__(
        self,
        *,
        in_channels: int,
        ch: int,
        ch_mult: Sequence[int],
        blocks_per_level: Sequence[int],
        attn_levels: Sequence[bool],
        z_channels: int,
        double_z: bool,
        dropout: float,
    ):
        super().__init__()
        widths = [ch * m for m in ch_mult]
        last = len(widths) - 1
        self.conv_in = Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        width_in = ch
        chain = [ch]  # ch_mult is never empty: the loop below sets it
        for i, width in enumerate(widths):
            chain = [width_in] + [width] * blocks_per_level[i]
            self.down.append(Level(chain, dropout, attn_levels[i], "down" if i != last else None))
            width_in = width
        top = chain[-1]  # widths[-1], unless the last level has no blocks (as published)
        self.mid = MidBlock(top, dropout)
        self.norm_out = GroupNorm(top)
        self.conv_out = Conv2d(top, 2 * z_channels if double_z else z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(self.norm_out(h, silu=True, inplace=True))


class Decoder(nn.Module):
    """conv_in, mid, `up` levels run from the deepest (each but level 0 doubles the size), GN-SiLU, conv_out.

    `up[i]` is level i (as in the published module, which builds them deepest first and
    prepends); it has one more ResnetBlock than the encoder's level i.
    """

    def __init__(
        self,
        *,
        out_ch: int,
        ch: int,
        ch_mult: Sequence[int],
        blocks_per_level: Sequence[int],
        attn_levels: Sequence[bool],
        z_channels: int,
        dropout: float,
    ):
        super().__init__()
        widths = [ch * m for m in ch_mult]
        last = len(widths) - 1
        self.conv_in = Conv2d(z_channels, widths[-1], 3, padding=1)
        self.mid = MidBlock(widths[-1], dropout)
        self.up = nn.ModuleList()
        for i, width in enumerate(widths):
            width_in = widths[min(i + 1, last)]  # what the level below (deeper) hands up
            chain = [width_in] + [width] * (blocks_per_level[i] + 1)
            self.up.append(Level(chain, dropout, attn_levels[i], "up" if i != 0 else None))
        self.norm_out = GroupNorm(widths[0])
        self.conv_out = Conv2d(widths[0], out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(self.norm_out(h, silu=True, inplace=True))

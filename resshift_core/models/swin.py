"""Shifted-window (Swin) attention on NCHW feature maps, as the ResShift UNet uses it.

Module and parameter names (`patch_embed.proj`, `blocks.1.attn.qkv`, `blocks.1.attn_mask`, ...)
reproduce the published checkpoints key for key; everything else is our own.

What the published code fixes, and we keep:
* windows never pad: every side must be a multiple of the window at that level;
* a block built for a resolution not larger than its window uses one window covering the whole
  build resolution and never shifts; this is decided once, at build time;
* the shift mask uses -100 (not -inf) between regions, added to the logits before the softmax,
  and it is the published code's mask, quirk included (see `shifted_window_mask`);
* GroupNorm uses 32 groups and normalises fp32 inputs in fp32.

The `attn_mask` and `relative_position_index` buffers exist for key compatibility only: the
forward pass derives both for the actual input size and never reads them, as the published
forward never does either (so a checkpoint with stale or damaged buffers still computes right).

Half precision: GroupNorm runs the native fp16/bf16 kernel (it accumulates mean and variance in
fp32 internally), instead of the published cast to fp32 and back, which costs two full copies
of every activation. The attention runs through `scaled_dot_product_attention`, whose kernels
also accumulate the softmax in fp32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .autograd_free import records_no_graph
from .cpu_matmul import Linear
from .derived import DerivedCache

# Logit offset between tokens of different shift regions (the published value).
SHIFT_MASK_VALUE = -100.0


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups; fp32 statistics whatever the input dtype."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16) and self.weight.dtype == x.dtype:
            # The half kernels accumulate in fp32 already; skipping the upcast saves two copies.
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
        out = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        return out.to(x.dtype)


def relative_position_index(window: int, device=None) -> torch.Tensor:
    """(N, N) row of the bias table for each query/key pair of a window (N = window**2)."""
    axis = torch.arange(window, device=device)
    coords = torch.stack(torch.meshgrid(axis, axis, indexing="ij")).flatten(1)  # 2, N
    offset = coords[:, :, None] - coords[:, None, :] + (window - 1)  # 2, N, N, each in [0, 2w-2]
    return offset[0] * (2 * window - 1) + offset[1]


def shifted_window_mask(height: int, width: int, window: int, shift: int, device=None) -> torch.Tensor:
    """(num_windows, N, N) additive mask, 0 or SHIFT_MASK_VALUE, exactly as the published code makes it.

    The intent is the usual Swin mask (forbid attention between pixels the cyclic shift brought
    together), but the published `calculate_mask` indexes a (1, 1, H, W) tensor as if it were
    (1, H, W, 1) and flattens each window transposed. What it really computes, and what the
    released weights were trained with: a pixel's label is the band (0: rows < H-window,
    1: < H-shift, 2: the rest) of row `window_row_start + (its column inside the window)`. So only
    the bottom row of windows is masked, every window of a row the same way, and the width plays
    no part. We reproduce that; a "corrected" mask would change the outputs.
    """
    rows = torch.arange(height, device=device)
    band = (rows >= height - window).long() + (rows >= height - shift).long()
    # Token (a, b) of window-row r takes the band of row r*window + b, whatever a is.
    per_row = rearrange(band, "(nh ww) -> nh 1 ww", ww=window).expand(-1, window, -1)
    label = rearrange(per_row, "nh wh ww -> nh (wh ww)")
    crosses = label[:, :, None] != label[:, None, :]
    mask = torch.zeros(crosses.shape, device=device).masked_fill_(crosses, SHIFT_MASK_VALUE)
    return mask.repeat_interleave(width // window, dim=0)  # same mask for every window of a row


def bottom_row_mask(window: int, shift: int, device=None) -> torch.Tensor:
    """(N, N) shift mask shared by every window of the bottom row; all other windows have none.

    This is `shifted_window_mask` in closed form: above the bottom row every pixel is in band 0,
    and in the bottom row the band of column b is 1 + (b >= window - shift), whatever the size.
    So the attention needs two masks per block, not one per window and input size.
    """
    band = (torch.arange(window, device=device) >= window - shift).long()
    label = band.repeat(window)  # token (a, b) -> band of column b
    crosses = label[:, None] != label[None, :]
    return torch.zeros(crosses.shape, device=device).masked_fill_(crosses, SHIFT_MASK_VALUE)


def _built_on_cpu(make, *args) -> torch.Tensor:
    """A constant buffer, computed on the CPU and moved to the default device.

    Building on the meta device would otherwise trace these small index computations through
    the meta kernels, which takes seconds the first time.
    """
    return make(*args, device="cpu").to(torch.get_default_device())


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative-position bias."""

    def __init__(self, dim: int, window: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"swin embed dim {dim} is not divisible by {num_heads} heads")
        self.window = window
        self.num_heads = num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        # Stored in the published checkpoints, so kept for key compatibility; the forward pass
        # derives the index itself and does not depend on this buffer being loaded.
        self.register_buffer("relative_position_index", _built_on_cpu(relative_position_index, window))
        self.qkv = Linear(dim, 3 * dim)
        self.proj = Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) bias, gathered from the table."""
        table = self.relative_position_bias_table
        index = relative_position_index(self.window, device=table.device)
        return rearrange(table[index], "i j heads -> heads i j")

    def forward(self, tokens: torch.Tensor, bias: torch.Tensor, batch: int, bottom_windows: int) -> torch.Tensor:
        """Attention of (batch*windows, N, C) tokens -> (batch*windows, heads, N, d).

        `bias` is (1, heads, N, N) for every window, or for shifted blocks (2, heads, N, N): the
        first for all windows but the last `bottom_windows` of each image, the second for those.
        """
        qkv = self.qkv(tokens)
        q, k, v = rearrange(qkv, "bw n (three h d) -> three bw h n d", three=3, h=self.num_heads).unbind(0)
        if bias.shape[0] == 1:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        # Windows are ordered (image, row, column): each image's bottom row is a contiguous tail,
        # so both groups are plain slices and each mask broadcasts over its group.
        per_image = q.shape[0] // batch
        top = per_image - bottom_windows
        out = []
        for image in range(batch):  # over images, not windows: a compiled graph then fits any size
            start = image * per_image
            for lo, hi, mask in ((start, start + top, bias[:1]), (start + top, start + per_image, bias[1:])):
                if hi > lo:
                    out.append(F.scaled_dot_product_attention(q[lo:hi], k[lo:hi], v[lo:hi], attn_mask=mask))
        return torch.cat(out)


# qkv elements of one band of window rows, outside autograd (32 MiB in float32); see
# SwinBlock._attend_in_bands.
ATTENTION_BAND_ELEMENTS = 1 << 23

# Hidden elements of the MLP computed at once outside autograd (32 MiB in float32): its hidden
# layer is mlp_ratio x wider than the block, the widest activation of the whole UNet (768
# channels at a 256x256 tile: 200 MB), so large maps go through it in bands of rows.
MLP_BAND_ELEMENTS = 1 << 23


class Mlp(nn.Module):
    """Per-pixel feed-forward network as two 1x1 convolutions (published layout)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def add_to(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """residual + forward(x), written into `residual` (which must be ours to overwrite).

        Outside autograd the pixels are independent, so the map goes through in bands of rows
        (at most MLP_BAND_ELEMENTS hidden values alive) with the GELU in place; the sums are
        the same as forward's."""
        # Compiled, the row loop would tie the graph to the map's height (and Inductor fuses the
        # GELU anyway): one plain call then.
        if torch.compiler.is_compiling() or not records_no_graph(x, residual, self.fc1.weight):
            return residual + self.forward(x)
        _, _, height, width = x.shape
        rows = max(1, MLP_BAND_ELEMENTS // max(1, width * self.fc1.out_channels))
        for image in range(x.shape[0]):
            for top in range(0, height, rows):
                band = slice(top, top + rows)
                hidden = torch.ops.aten.gelu_(self.fc1(x[image : image + 1, :, band]))
                residual[image : image + 1, :, band] += self.fc2(hidden)
        return residual


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention + MLP, both residual, on an NCHW map."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, resolution: int):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift {shift} must be in [0, window {window})")
        self.window, self.shift = window, shift
        self.norm1 = GroupNorm32(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = GroupNorm32(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # The published checkpoints store the mask for the build resolution; kept for key
        # compatibility only (see `bottom_row_mask` for what the forward pass uses).
        mask = _built_on_cpu(shifted_window_mask, resolution, resolution, window, shift) if shift else None
        self.register_buffer("attn_mask", mask)
        self._bias_cache = DerivedCache()

    def attention_bias(self, device, dtype) -> torch.Tensor:
        """Relative-position bias, plus the bottom-row shift mask as a second entry if shifted.

        (1 or 2, heads, N, N), independent of the input size; cached per device and dtype outside
        autograd (see DerivedCache).
        """
        table = self.attn.relative_position_bias_table
        return self._bias_cache.get(table, device, dtype, lambda: self._build_bias(device, dtype))

    def _build_bias(self, device, dtype) -> torch.Tensor:
        bias = self.attn.position_bias().float()[None]
        if self.shift:
            bias = torch.cat([bias, bias + bottom_row_mask(self.window, self.shift, device=device)])
        return bias.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        w, s = self.window, self.shift
        if height % w or width % w:
            raise ValueError(f"feature map {height}x{width} is not a multiple of the attention window {w}")
        # Work in (B, H, W, C): a free view for channels-last inputs, and what the linears want.
        h = self.norm1(x).permute(0, 2, 3, 1)
        if s:
            h = torch.roll(h, (-s, -s), (1, 2))
        bias = self.attention_bias(x.device, x.dtype)
        if torch.compiler.is_compiling() or not records_no_graph(x, self.attn.qkv.weight):
            h = self._attend(h, bias, last_row=True)
        else:
            h = self._attend_in_bands(h, bias)
        if s:
            h = torch.roll(h, (s, s), (1, 2))
        x = x + h.permute(0, 3, 1, 2)
        return self.mlp.add_to(x, self.norm2(x))  # x + mlp(norm2(x)), x being our own sum

    def _attend(self, h: torch.Tensor, bias: torch.Tensor, last_row: bool) -> torch.Tensor:
        """Window attention and output projection of (B, rows, W, C) pixels, whole rows of windows;
        `last_row`: they end with the map's bottom row of windows (the shifted blocks mask it)."""
        batch, height, width, _ = h.shape
        w = self.window
        tokens = rearrange(h, "b (nh wh) (nw ww) c -> (b nh nw) (wh ww) c", wh=w, ww=w)
        out = self.attn(tokens, bias, batch, bottom_windows=width // w if last_row else 0)
        # Undo the windowing straight from the heads layout; the output projection is per pixel.
        h = rearrange(out, "(b nh nw) heads (wh ww) d -> b (nh wh) (nw ww) (heads d)", b=batch, nh=height // w, wh=w)
        return self.attn.proj(h)

    def _attend_in_bands(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """`_attend` over bands of window rows (windows are independent): the qkv projection,
        3x the block's width, and its per-head copy exist for one band at a time (at a 256x256
        tile they would be 300 MB in float32)."""
        batch, height, width, channels = h.shape
        w = self.window
        window_rows = height // w
        band = max(1, ATTENTION_BAND_ELEMENTS // (w * width * 3 * channels))
        out = h.new_empty(h.shape)
        for image in range(batch):
            for top in range(0, window_rows, band):
                rows = slice(top * w, min(top + band, window_rows) * w)
                last_row = top + band >= window_rows
                out[image : image + 1, rows] = self._attend(h[image : image + 1, rows], bias, last_row)
        return out


class Projection(nn.Module):
    """1x1 convolution with an optional GroupNorm after it (the published patch (un)embedding)."""

    def __init__(self, in_channels: int, out_channels: int, norm: bool):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 1)
        self.norm = GroupNorm32(out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class SwinLayer(nn.Module):
    """Project to the Swin width, run `depth` blocks (every other one shifted), project back.

    The published `BasicLayer` with patch_size 1. `resolution` is the side the layer was built
    for: it decides the window (shrunk to the resolution when that is not larger) and whether
    odd blocks shift; inputs of any size that is a multiple of `window` are accepted.
    """

    def __init__(
        self,
        channels: int,
        embed_dim: int,
        num_heads: int,
        window_size: int,
        depth: int,
        resolution: int,
        mlp_ratio: float,
        patch_norm: bool,
    ):
        super().__init__()
        self.window, shift = swin_window(resolution, window_size)
        self.patch_embed = Projection(channels, embed_dim, patch_norm)
        self.patch_unembed = Projection(embed_dim, channels, patch_norm)
        self.blocks = nn.ModuleList(
            SwinBlock(embed_dim, num_heads, self.window, shift if i % 2 else 0, mlp_ratio, resolution)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return self.patch_unembed(x)


def swin_window(resolution: int, window_size: int) -> tuple[int, int]:
    """(window, shift of the odd blocks) for a layer built at `resolution` (published rule)."""
    if resolution <= window_size:
        return resolution, 0
    return window_size, window_size // 2


def window_from_table_rows(rows: int) -> int | None:
    """Window side w from a bias table of (2w-1)**2 rows, or None if `rows` is not of that form."""
    side = math.isqrt(rows)
    if side * side != rows or side % 2 == 0:
        return None
    return (side + 1) // 2

"""Read a ResShift UNet's hyper-parameters off its weights (key names and tensor shapes only).

`detect_unet_config(state_dict)` returns the canonical config (see `UNetConfig.canonical`): the
fields that do not change the computation get fixed values (dropout 0, unused attention
resolutions dropped, ...). What cannot be read and how it is settled:

* `image_size`: only relative sizes matter. It is read exactly from the Swin shift masks stored
  in the checkpoint (their window count gives the resolution a layer was built for), or from a
  layer whose window was shrunk to its resolution. Published models give 64.
* `in_channels` when the LR image enters the UNet directly (lq_size == image_size): the input
  convolution sees in_channels + 3 (+1 with a mask); in_channels == out_channels is assumed, as in
  every published model (the UNet predicts the clean latent).
* A noise map (one-step students): input-convolution channels past the latent and the LR (RSD's
  "concat"), or a `noise_proj` convolution (Distilled-ResShift's "add"). Without an LR feature
  extractor one extra channel could also be an inpainting mask; no published inpainting model is
  built that way (their mask enters the feature extractor), so there it is read as a noise map,
  except in a pixel-folding model of ours, where a noise map is not allowed.
* `cond_lq` is always True (the published code cannot run a UNet without LR conditioning).

Keys must be canonical already (no `module.` / `_orig_mod.` prefixes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace

import torch

from ..errors import ArchitectureError
from ..models.swin import window_from_table_rows
from ..models.unet import ResShiftUNet, UNetConfig
from .layout import require_layout

MAX_NOISE_CHANNELS = 4  # a student's noise map: RSD 1, Distilled-ResShift 1 (concat) or 3 (add)
VQGAN_PREFIXES = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")
UNET_MARKERS = ("time_embed.0.weight", "input_blocks.0.0.weight", "middle_block.0.in_layers.0.weight", "out.2.weight")


def looks_like_unet(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True if the keys are those of a ResShift UNet (not necessarily a buildable one)."""
    return all(k in state_dict for k in UNET_MARKERS) and any(k.startswith("output_blocks.") for k in state_dict)


def _looks_like_vqgan(state_dict: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith(VQGAN_PREFIXES) for k in state_dict)


class _Reader:
    """Shape look-ups that fail with an ArchitectureError naming the key."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor]):
        self.sd = state_dict

    def has(self, key: str) -> bool:
        return key in self.sd

    def shape(self, key: str, ndim: int | None = None) -> tuple[int, ...]:
        if key not in self.sd:
            raise ArchitectureError(f"ResShift UNet weights: expected the tensor {key}, which is missing")
        shape = tuple(self.sd[key].shape)
        if ndim is not None and len(shape) != ndim:
            raise ArchitectureError(f"ResShift UNet weights: {key} has shape {shape}, expected {ndim} dimensions")
        return shape

    def indices(self, prefix: str) -> list[int]:
        """Sorted integers i of the keys `prefix{i}.…`."""
        pat = re.compile(re.escape(prefix) + r"(\d+)\.")
        return sorted({int(m.group(1)) for k in self.sd if (m := pat.match(k))})


def _block_out(r: _Reader, prefix: str) -> int:
    """Output width of the ResBlock at `prefix`."""
    return r.shape(prefix + "in_layers.2.weight", 4)[0]


class _Swin:
    """What one Swin layer's keys say."""

    def __init__(self, r: _Reader, prefix: str, level: int):
        self.prefix, self.level = prefix, level
        self.embed = r.shape(prefix + "patch_embed.proj.weight", 4)[0]
        self.patch_norm = r.has(prefix + "patch_embed.norm.weight")
        blocks = r.indices(prefix + "blocks.")
        if not blocks or blocks != list(range(len(blocks))):
            raise ArchitectureError(f"Swin layer {prefix[:-1]}: blocks {blocks} are not numbered 0..n-1")
        self.depth = len(blocks)
        rows, heads = r.shape(prefix + "blocks.0.attn.relative_position_bias_table", 2)
        self.heads = heads
        window = window_from_table_rows(rows)
        if window is None:
            raise ArchitectureError(
                f"{prefix}blocks.0.attn.relative_position_bias_table has {rows} rows; expected (2*window-1)**2"
            )
        self.window = window
        self.hidden = r.shape(prefix + "blocks.0.mlp.fc1.weight", 4)[0]
        self.has_buffers = r.has(prefix + "blocks.0.attn.relative_position_index")
        # Shift masks are stored for the build resolution: windows = (resolution / window)**2.
        self.resolution: int | None = None
        for b in blocks:
            key = f"{prefix}blocks.{b}.attn_mask"
            if r.has(key):
                n_windows, n, _ = r.shape(key, 3)
                side = math.isqrt(n_windows)
                if n != self.window**2 or side * side != n_windows:
                    raise ArchitectureError(
                        f"{key} has shape {(n_windows, n, n)}; expected (k*k, {self.window**2}, {self.window**2})"
                    )
                self.resolution = side * self.window
        self.shifted = self.resolution is not None
        if self.has_buffers and self.depth >= 2 and not self.shifted:
            # No shift although odd blocks exist: built at a resolution not larger than the window,
            # and the window was shrunk to exactly that resolution.
            self.resolution = self.window


def detect_unet_config(state_dict: Mapping[str, torch.Tensor]) -> UNetConfig:
    """The architecture of a ResShift UNet state dict (canonical keys). Raises ArchitectureError."""
    if not looks_like_unet(state_dict):
        if _looks_like_vqgan(state_dict):
            raise ArchitectureError("this is a VQGAN/autoencoder checkpoint, not a ResShift UNet; load it as the VAE")
        sample = ", ".join(sorted(map(str, state_dict))[:5]) or "no keys at all"
        raise ArchitectureError(
            f"not a ResShift UNet: expected the keys {', '.join(UNET_MARKERS)} and output_blocks.*; "
            f"found {len(state_dict)} tensors ({sample}, ...)"
        )
    r = _Reader(state_dict)

    emb_dim, model_channels = r.shape("time_embed.0.weight", 2)
    if emb_dim != 4 * model_channels:
        raise ArchitectureError(
            f"time_embed.0.weight has shape {(emb_dim, model_channels)}; expected (4*model_channels, model_channels)"
        )
    width0, conv_in, _, _ = r.shape("input_blocks.0.0.weight", 4)
    out_channels, out_in, _, _ = r.shape("out.2.weight", 4)
    fold = _pixel_unshuffle(state_dict)
    if conv_in % fold**2 or out_channels % fold**2:
        raise ArchitectureError(
            f"pixel_unshuffle {fold} folds {fold * fold} pixels into channels, but input_blocks.0.0.weight "
            f"takes {conv_in} and out.2.weight makes {out_channels} channels (not multiples of {fold * fold})"
        )
    conv_in, out_channels = conv_in // fold**2, out_channels // fold**2
    if out_in != width0:
        raise ArchitectureError(f"out.2.weight takes {out_in} channels but the first level is {width0} wide")
    film_width = r.shape("middle_block.0.emb_layers.1.weight", 2)[0]  # 2x the width with scale and shift
    use_scale_shift_norm = film_width == 2 * r.shape("middle_block.0.in_layers.2.weight", 4)[0]

    # LR branch: n x (conv, SiLU, stride-2 conv), or nothing when the LR is already latent-sized.
    convs = [i for i in r.indices("feature_extractor.") if i % 3 == 0]
    n_down = len(convs)
    if convs != [3 * k for k in range(n_down)]:
        raise ArchitectureError(
            f"feature_extractor convolutions at {convs} are not the published (conv, SiLU, down) x n pattern"
        )
    if n_down:
        lq_in = r.shape("feature_extractor.0.weight", 4)[1]
        if lq_in not in (3, 4):
            raise ArchitectureError(
                f"feature_extractor.0.weight takes {lq_in} channels; expected 3 (LR image) or 4 (+ mask)"
            )
        cond_mask = lq_in == 4
        lq_channels = 16 * 2**n_down
        last = r.shape(f"feature_extractor.{3 * n_down - 1}.op.weight", 4)[0]
        if last != lq_channels:
            raise ArchitectureError(f"the LR feature extractor ends with {last} channels; expected {lq_channels}")
        # in_channels == out_channels (the UNet predicts the clean latent); more is a noise map
        in_channels = out_channels
        concat_noise = conv_in - lq_channels - out_channels
        if not 0 <= concat_noise <= MAX_NOISE_CHANNELS:
            in_channels, concat_noise = conv_in - lq_channels, 0
    else:
        # The LR image (3 channels) enters as is. Past it: the mask of a pixel-folding inpainting
        # model (ours: the mask is folded with the image), else a one-step student's noise map
        # (RSD). No published inpainting model lacks the LR feature extractor (their mask enters
        # it, feature_extractor.0 takes 4 channels), so these never collide with a published file.
        extra = conv_in - out_channels  # assumes in_channels == out_channels (all published models)
        if not 3 <= extra <= 3 + MAX_NOISE_CHANNELS or (fold > 1 and extra not in (3, 4)):
            raise ArchitectureError(
                f"input_blocks.0.0.weight takes {conv_in} channels; with {out_channels} latent channels expected "
                f"{out_channels + 3} (latent + LR image), {out_channels + 4} (+ mask or a noise map) or more "
                "(+ a noise map of several channels)"
            )
        cond_mask = fold > 1 and extra == 4
        in_channels = out_channels
        concat_noise = 0 if fold > 1 else extra - 3
    noise_channels, noise_injection = concat_noise, "concat"
    if r.has("noise_proj.weight"):  # Distilled-ResShift's "add" students: a conv of the noise map, added
        if concat_noise:
            raise ArchitectureError("the UNet has both a noise_proj convolution and noise channels in its input conv")
        noise_channels, noise_injection = r.shape("noise_proj.weight", 4)[1], "add"
    if in_channels <= 0:
        raise ArchitectureError(f"input_blocks.0.0.weight takes {conv_in} channels, fewer than the LR features need")

    levels, resblock_updown, conv_resample = _levels(r)
    num_levels = len(levels)
    num_res_blocks = tuple(n for n, _ in levels)
    widths = [w for _, w in levels]
    if widths[0] != width0:
        raise ArchitectureError(f"the first level is {widths[0]} wide but input_blocks.0.0 makes {width0} channels")
    channel_mult = tuple(_ratio(w, model_channels) for w in widths)

    # Swin layers: where they are, and what they agree on.
    swins = [_Swin(r, "middle_block.1.", num_levels - 1)]
    attn_levels = []
    j = 0
    for level in reversed(range(num_levels)):
        for i in range(num_res_blocks[level] + 1):
            if i == 0 and r.has(f"output_blocks.{j}.1.patch_embed.proj.weight"):
                swins.append(_Swin(r, f"output_blocks.{j}.1.", level))
                attn_levels.append(level)
            j += 1
    idx = 1
    for level in range(num_levels):
        for i in range(num_res_blocks[level]):
            has = r.has(f"input_blocks.{idx}.1.patch_embed.proj.weight")
            if i == 0 and has != (level in attn_levels):
                raise ArchitectureError(
                    f"level {level}: Swin attention is {'present' if has else 'absent'} in the encoder "
                    f"(input_blocks.{idx}) but {'absent' if has else 'present'} in the decoder"
                )
            if has:
                swins.append(_Swin(r, f"input_blocks.{idx}.1.", level))
            idx += 1
        idx += level != num_levels - 1

    first = swins[0]
    for s in swins:
        for attr in ("embed", "depth", "heads", "hidden", "patch_norm"):
            if getattr(s, attr) != getattr(first, attr):
                raise ArchitectureError(
                    f"Swin layers disagree on {attr}: {getattr(s, attr)} at {s.prefix[:-1]}, "
                    f"{getattr(first, attr)} at {first.prefix[:-1]}"
                )
    window = max(s.window for s in swins)
    for s in swins:
        if s.window < window and s.resolution is None:
            s.resolution = s.window  # shrunk window: built at exactly that resolution
    image_size = _image_size(swins, window, num_levels) * fold

    heads = first.heads
    config = UNetConfig(
        image_size=image_size,
        in_channels=in_channels,
        model_channels=model_channels,
        out_channels=out_channels,
        num_res_blocks=num_res_blocks,
        attention_resolutions=(),
        channel_mult=channel_mult,
        conv_resample=conv_resample,
        num_heads=heads,
        num_head_channels=first.embed // heads if first.embed % heads == 0 else -1,
        use_scale_shift_norm=use_scale_shift_norm,
        resblock_updown=resblock_updown,
        swin_depth=first.depth,
        swin_embed_dim=first.embed,
        window_size=window,
        mlp_ratio=_ratio(first.hidden, first.embed),
        patch_norm=first.patch_norm,
        cond_lq=True,
        cond_mask=cond_mask,
        lq_size=image_size * 2**n_down,
        pixel_unshuffle=fold,
        noise_channels=noise_channels,
        noise_injection=noise_injection,
    )
    res = config.level_resolutions()
    config = replace(config, attention_resolutions=[res[lvl] for lvl in sorted(set(attn_levels))])
    _check_layout(state_dict, config)
    return config.canonical()


def _pixel_unshuffle(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Our pixel-folding factor, stored as a one-number buffer (absent, i.e. 1, in published models)."""
    value = state_dict.get("pixel_unshuffle")
    if value is None:
        return 1
    if value.numel() != 1 or value.is_floating_point() or int(value) < 2:
        raise ArchitectureError(f"pixel_unshuffle holds {value.tolist()}; expected one integer of 2 or more")
    return int(value)


def _ratio(a: int, b: int):
    return a // b if a % b == 0 else a / b


def _levels(r: _Reader) -> tuple[list[tuple[int, int]], bool, bool]:
    """[(res blocks, width)] per level, resblock_updown, conv_resample — from the decoder keys.

    Each decoder level has (res blocks + 1) blocks and all but the top one end with an upsampler:
    `.k.conv` (convolution), `.k.in_layers` (a resampling ResBlock), or nothing (nearest only).
    In the last case the encoder's parameter-free average pools (empty indices) mark the levels.
    """
    outs = r.indices("output_blocks.")
    if outs != list(range(len(outs))):
        raise ArchitectureError(f"output_blocks indices {outs} are not 0..n-1")
    kinds = []
    for j in outs:
        p = f"output_blocks.{j}."
        _block_out(r, p + "0.")
        k = 2 if r.has(p + "1.patch_embed.proj.weight") else 1
        kinds.append("conv" if r.has(f"{p}{k}.conv.weight") else "res" if r.has(f"{p}{k}.in_layers.0.weight") else None)
    ups = [kd for kd in kinds if kd]
    if ups and len(set(ups)) > 1:
        raise ArchitectureError("the decoder mixes convolution and ResBlock upsamplers")
    if ups:
        groups, current = [], []
        for j, kd in enumerate(kinds):
            current.append(j)
            if kd:
                groups.append(current)
                current = []
        if not current:
            raise ArchitectureError("the last decoder block upsamples; expected the top level to end without")
        groups.append(current)
        resblock_updown = ups[0] == "res"
        conv_resample = True  # unused with resblock_updown; canonical value
    else:
        groups = _levels_from_encoder(r, len(outs))
        resblock_updown = False
        conv_resample = len(groups) == 1  # several levels and no upsampler weights: nearest + avg-pool
    groups.reverse()  # decoder runs from the deepest level
    levels = [(len(g) - 1, _block_out(r, f"output_blocks.{g[0]}.0.")) for g in groups]
    expected_in = 1 + sum(n for n, _ in levels) + len(levels) - 1
    n_in = max(r.indices("input_blocks."), default=0) + 1
    if n_in not in (expected_in, expected_in - 1):  # a trailing parameter-free block is invisible
        raise ArchitectureError(
            f"{n_in} encoder blocks found but the decoder implies {expected_in} "
            f"(levels with {[n for n, _ in levels]} res blocks)"
        )
    return levels, resblock_updown, conv_resample


def _levels_from_encoder(r: _Reader, n_out: int) -> list[list[int]]:
    """Decoder index groups when the upsamplers carry no weights: split at the encoder's empty indices."""
    n_in = max(r.indices("input_blocks."), default=0) + 1
    present = set(r.indices("input_blocks."))
    counts, n = [], 0
    for i in range(1, n_in):
        if i in present and not r.has(f"input_blocks.{i}.0.op.weight"):
            n += 1
        else:
            counts.append(n)
            n = 0
    counts.append(n)
    if sum(c + 1 for c in counts) != n_out:
        raise ArchitectureError(f"encoder levels {counts} do not match the {n_out} decoder blocks")
    groups, j = [], 0
    for c in reversed(counts):
        groups.append(list(range(j, j + c + 1)))
        j += c + 1
    return groups


def _image_size(swins: list[_Swin], window: int, num_levels: int) -> int:
    """The smallest image_size whose level resolutions (halved with floor) match every pinned layer."""
    pinned = [(s.level, s.resolution, s.prefix[:-1]) for s in swins if s.resolution is not None]
    if not pinned:
        # Nothing stored pins it (no shift-mask buffers saved): assume the published pattern, the
        # deepest level (the middle block) built at exactly one window.
        return window * 2 ** (num_levels - 1)
    size = max(res * 2**level for level, res, _ in pinned)
    if any(size // 2**level != res for level, res, _ in pinned):
        detail = ", ".join(f"{name} built for {res} at level {level}" for level, res, name in pinned)
        raise ArchitectureError(f"the Swin layers imply inconsistent image sizes ({detail})")
    return size


def _check_layout(state_dict: Mapping[str, torch.Tensor], config: UNetConfig) -> None:
    """Build the detected network on the meta device and compare every key and shape."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in ResShiftUNet(config).state_dict().items()}
    except (ValueError, RuntimeError) as exc:  # e.g. a width GroupNorm's 32 groups cannot split
        raise ArchitectureError(f"the architecture read from the weights cannot be built: {exc}") from exc
    if not any(k.endswith("relative_position_index") for k in state_dict):
        # A file saved without buffers: compare the parameters only.
        expected = {k: v for k, v in expected.items() if not k.endswith(("relative_position_index", "attn_mask"))}
    require_layout(expected, state_dict, f"the ResShift UNet architecture read from them ({config.to_dict()})")

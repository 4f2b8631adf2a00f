"""Read a VQGAN's hyper-parameters off its state dict (key names and tensor shapes only).

Only keys under encoder., decoder., quantize., quant_conv. and post_quant_conv. describe the
network; anything else (training-only weights such as loss.discriminator.*, an EMA copy, ...)
is ignored by detection, and `strip_training_keys` drops it for loading.

What the weights cannot tell:
* `resolution`: we pick the canonical 256. In the published code it only decides which levels
  get attention (a level at resolution / 2**level pixels when that number is in
  attn_resolutions); the attention keys tell us that directly, and attn_resolutions is
  expressed at 256 to match. Nothing else reads it (the decoder's z_shape is only printed).
* `dropout` (training only) and `padding_mode` (ignored by the published code): defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ..errors import ArchitectureError
from ..models.vqgan import VQGAN, VQGANConfig
from .io import canonical_keys
from .layout import require_layout

VQGAN_PREFIXES = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")
UNET_MARKERS = ("input_blocks.", "time_embed.", "middle_block.", "output_blocks.")
CANONICAL_RESOLUTION = 256


def strip_training_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Only the tensors the VQGAN uses (keys under encoder./decoder./quantize./quant_conv./post_quant_conv.)."""
    return {k: v for k, v in state_dict.items() if k.startswith(VQGAN_PREFIXES)}


def looks_like_vqgan(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """An LDM-style autoencoder: encoder and decoder input convs present (codebook checked later)."""
    keys = canonical_keys(dict.fromkeys(state_dict))
    return "encoder.conv_in.weight" in keys and "decoder.conv_in.weight" in keys


def _indices(keys, prefix: str) -> list[int]:
    """Sorted distinct integers i of keys '<prefix><i>.…'."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in keys if (m := pattern.match(k))})


def _has_prefix(keys, prefix: str | tuple[str, ...]) -> bool:
    return any(k.startswith(prefix) for k in keys)


def _sample(keys, n: int = 6) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") if keys else "(no keys)"


def detect_vqgan_config(state_dict: Mapping[str, torch.Tensor]) -> VQGANConfig:
    """The VQGANConfig that rebuilds exactly these weights; ArchitectureError when there is none."""
    state_dict = canonical_keys(state_dict)
    if _has_prefix(state_dict, UNET_MARKERS):
        raise ArchitectureError(
            "this is a ResShift UNet checkpoint, not a VQGAN; load it as the model "
            "(--model on the command line, the Load ResShift Model node in ComfyUI)"
        )
    sd = strip_training_keys(state_dict)
    if not sd:
        raise ArchitectureError(
            "not a VQGAN checkpoint: expected keys under encoder., decoder., quantize., quant_conv. "
            f"and post_quant_conv.; found {_sample(state_dict)}"
        )

    def shape(key: str) -> tuple[int, ...]:
        if key not in sd:
            raise ArchitectureError(f"VQGAN weights incomplete: {key} is missing (found {_sample(sd)})")
        return tuple(sd[key].shape)

    if "quantize.embedding.weight" not in sd and _has_prefix(sd, "encoder."):
        raise ArchitectureError(
            "this autoencoder has no codebook (quantize.embedding.weight): it looks like a KL "
            "autoencoder, not the VQGAN ResShift uses. Use the VQGAN file paired with the model "
            "(e.g. autoencoder_vq_f4.pth)."
        )

    ch, in_channels = shape("encoder.conv_in.weight")[:2]
    levels = _indices(sd, "encoder.down.")
    if not levels or levels != list(range(len(levels))):
        raise ArchitectureError(f"expected encoder levels encoder.down.0, 1, ...; found levels {levels}")
    up_levels = _indices(sd, "decoder.up.")
    if up_levels != levels:
        raise ArchitectureError(f"the encoder has levels {levels} but the decoder has {up_levels}: expected the same")

    blocks, widths = [], []
    for i in levels:
        n_enc = len(_indices(sd, f"encoder.down.{i}.block."))
        n_dec = len(_indices(sd, f"decoder.up.{i}.block."))
        if n_dec != n_enc + 1:
            raise ArchitectureError(
                f"level {i}: the encoder has {n_enc} ResnetBlocks and the decoder {n_dec}; the "
                "decoder should have one more"
            )
        blocks.append(n_enc)
        widths.append(shape(f"decoder.up.{i}.block.0.conv2.weight")[0])
    if any(w % ch for w in widths):
        raise ArchitectureError(f"level widths {widths} are not multiples of the base width ch={ch}")
    ch_mult = [w // ch for w in widths]

    # Which levels carry attention, as attn_resolutions at the canonical resolution.
    resolution = max(CANONICAL_RESOLUTION, 2 ** (len(levels) - 1))
    enc_attn = [_has_prefix(sd, f"encoder.down.{i}.attn.") for i in levels]
    dec_attn = [_has_prefix(sd, f"decoder.up.{i}.attn.") for i in levels]
    if enc_attn != dec_attn:
        raise ArchitectureError(
            f"attention at encoder levels {[i for i in levels if enc_attn[i]]} but decoder levels "
            f"{[i for i in levels if dec_attn[i]]}: expected the same levels"
        )
    attn_resolutions = [resolution >> i for i in levels if enc_attn[i]]

    z_channels = shape("decoder.conv_in.weight")[1]
    enc_out = shape("encoder.conv_out.weight")[0]
    if enc_out not in (z_channels, 2 * z_channels):
        raise ArchitectureError(
            f"encoder.conv_out makes {enc_out} channels; expected z_channels={z_channels} (or twice "
            "that with double_z), as decoder.conv_in reads"
        )
    n_embed, embed_dim = shape("quantize.embedding.weight")
    quant = shape("quant_conv.weight")
    if quant[:2] != (embed_dim, z_channels):
        raise ArchitectureError(
            f"quant_conv.weight has shape {quant}; expected ({embed_dim}, {z_channels}, 1, 1) for a "
            f"{embed_dim}-dim codebook and z_channels={z_channels}"
        )

    config = VQGANConfig(
        embed_dim=embed_dim,
        n_embed=n_embed,
        z_channels=z_channels,
        ch=ch,
        ch_mult=ch_mult,
        num_res_blocks=blocks,
        attn_resolutions=attn_resolutions,
        resolution=resolution,
        in_channels=in_channels,
        out_ch=shape("decoder.conv_out.weight")[0],
        double_z=enc_out == 2 * z_channels,
    )
    _check_rebuilds(config, sd)
    return config


def _check_rebuilds(config: VQGANConfig, sd: Mapping[str, torch.Tensor]) -> None:
    """Build on the meta device (no memory) and require the exact same keys and shapes."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in VQGAN(config).state_dict().items()}
    require_layout(expected, sd, f"the VQGAN architecture read off them ({config.to_dict()})")

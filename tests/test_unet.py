"""The ResShift UNet: published layouts, detection from weights, reference parity, any input size."""

import json
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from conftest import one_torch_thread, published_layouts, reference_cases
from resshift_core.checkpoints.detect_unet import detect_unet_config, looks_like_unet
from resshift_core.checkpoints.io import load_state_dict
from resshift_core.errors import ArchitectureError, InputError
from resshift_core.models.swin import bottom_row_mask, shifted_window_mask
from resshift_core.models.unet import ResShiftUNet, UNetConfig
from resshift_core.tiny import tiny_unet, tiny_unet_config

UNET_LAYOUTS = [p for p in published_layouts() if json.loads(p.read_text())["part"] == "unet"]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _layout(path):
    return json.loads(path.read_text())


def _meta_model(config):
    with torch.device("meta"):
        return ResShiftUNet(config)


def _shapes(state_dict):
    return {k: list(v.shape) for k, v in state_dict.items()}


# ------------------------------------------------------------------------------------------------
# Published layouts
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", UNET_LAYOUTS, ids=lambda p: p.stem)
def test_builds_every_published_layout_key_for_key(path):
    layout = _layout(path)
    model = _meta_model(UNetConfig.from_published(layout["params"]))
    assert _shapes(model.state_dict()) == layout["state_dict"]
    assert list(model.state_dict()) == list(layout["state_dict"])  # same order, too
    assert sum(p.numel() for p in model.parameters()) == layout["parameter_count"]


@pytest.mark.parametrize("path", UNET_LAYOUTS, ids=lambda p: p.stem)
def test_detects_every_published_layout(path):
    layout = _layout(path)
    config = UNetConfig.from_published(layout["params"])
    state_dict = _meta_model(config).state_dict()
    assert looks_like_unet(state_dict)
    detected = detect_unet_config(state_dict)
    assert detected == config.canonical()
    # The fields the published configs spell out come back as they were.
    for field in (
        "image_size",
        "in_channels",
        "model_channels",
        "out_channels",
        "channel_mult",
        "num_res_blocks",
        "attention_resolutions",
        "swin_embed_dim",
        "window_size",
        "swin_depth",
        "mlp_ratio",
        "use_scale_shift_norm",
        "lq_size",
        "num_head_channels",
    ):
        assert getattr(detected, field) == getattr(config, field), field
    assert detected.size_multiple == 64


def test_config_round_trips_through_json():
    params = (
        _layout(UNET_LAYOUTS[0])["params"]
        if UNET_LAYOUTS
        else {
            "image_size": 64,
            "in_channels": 3,
            "model_channels": 160,
            "out_channels": 3,
            "num_res_blocks": [2, 2, 2, 2],
            "attention_resolutions": [64, 32, 16, 8],
        }
    )
    config = UNetConfig.from_published(params)
    d = json.loads(json.dumps(config.to_dict()))
    assert UNetConfig(**d) == config == UNetConfig.from_published(d)
    assert UNetConfig.from_published({**params, "num_res_blocks": 2}).num_res_blocks == (2,) * len(config.channel_mult)


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"dims": 3}, "dims=3"),
        ({"use_new_attention_order": True}, "use_new_attention_order"),
        ({"num_res_blocks": [1, 2]}, "num_res_blocks"),
        ({"lq_size": 48}, "lq_size"),
        ({"cond_lq": False}, "cond_lq"),
    ],
)
def test_config_rejects_what_it_cannot_build(bad, words):
    params = {
        "image_size": 16,
        "in_channels": 3,
        "model_channels": 32,
        "out_channels": 3,
        "num_res_blocks": 1,
        "attention_resolutions": [16],
        "channel_mult": [1, 2, 2],
        "swin_embed_dim": 32,
        "lq_size": 16,
    }
    with pytest.raises(ArchitectureError, match=words):
        UNetConfig.from_published({**params, **bad})


# ------------------------------------------------------------------------------------------------
# Tiny models: detection round trip and forward
# ------------------------------------------------------------------------------------------------

# name -> (tiny task, overrides): what each one varies from the task's tiny UNet (resshift_core.tiny)
TINY: dict[str, tuple[str, dict[str, Any]]] = {
    # like the reference case: three levels, per-level res blocks, LR at latent size
    "three_levels": ("realsr", {"num_res_blocks": [1, 2, 1], "channel_mult": [1, 2, 2]}),
    # inpainting: mask channel, LR at 2x, one Swin block per layer, GroupNorm in the patch embedding
    "mask_lq2": (
        "inpaint",
        {
            "num_res_blocks": 2,
            "attention_resolutions": [8],
            "num_heads": 2,
            "num_head_channels": -1,
            "use_scale_shift_norm": False,
            "swin_depth": 1,
            "swin_embed_dim": 64,
            "window_size": 2,
            "mlp_ratio": 2.5,
            "patch_norm": True,
            "lq_size": 32,
        },
    ),
    # ResBlock up/down sampling, four levels, no FiLM, deeper Swin, LR at 4x, 8-channel latent
    "updown_lq4": (
        "faceir",
        {
            "image_size": 32,
            "num_res_blocks": [1, 1, 2, 1],
            "attention_resolutions": [32, 8],
            "channel_mult": [1, 1, 2, 2],
            "num_head_channels": -1,
            "use_scale_shift_norm": False,
            "resblock_updown": True,
            "swin_depth": 3,
            "mlp_ratio": 1,
            "lq_size": 128,
        },
    ),
    # pooling/nearest resampling (no weights), window larger than the resolution, LR at 8x, mask
    "pool_lq8": (
        "inpaint",
        {
            "image_size": 8,
            "attention_resolutions": [8, 4],
            "conv_resample": False,
            "num_head_channels": 8,
            "use_scale_shift_norm": False,
            "window_size": 8,
            "lq_size": 64,
        },
    ),
    # a single level: no resampling at all
    "one_level": (
        "realsr_x2",
        {
            "image_size": 8,
            "in_channels": 4,
            "out_channels": 4,
            "num_res_blocks": 2,
            "attention_resolutions": [],
            "channel_mult": [1],
            "num_heads": 4,
            "num_head_channels": -1,
            "use_scale_shift_norm": False,
            "swin_embed_dim": 64,
        },
    ),
    # ours: a pixel-space model folding 4x4 pixel blocks into channels (levels at 1/4 resolution)
    "pixel_fold4": ("pixel_fold", {"image_size": 32, "attention_resolutions": [4], "use_scale_shift_norm": False}),
    # ours, inpainting in pixel space: the mask is folded along with the image
    "pixel_fold2_mask": (
        "pixel_fold",
        {
            "attention_resolutions": [],
            "num_heads": 2,
            "num_head_channels": -1,
            "use_scale_shift_norm": False,
            "window_size": 2,
            "cond_mask": True,
            "pixel_unshuffle": 2,
        },
    ),
}


def _config(name: str, **more) -> UNetConfig:
    task, overrides = TINY[name]
    return tiny_unet_config(task, **overrides, **more)


def _tiny(name: str, seed: int = 0) -> ResShiftUNet:
    task, overrides = TINY[name]
    model = tiny_unet(task, seed, **overrides)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # make every parameter matter (published init zeroes some convs)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def _inputs(config, height, width, batch=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    f = config.lq_size // config.image_size
    x = torch.randn(batch, config.in_channels, height, width, generator=g)
    lq = torch.randn(batch, 3, height * f, width * f, generator=g)
    mask = (torch.rand(batch, 1, height * f, width * f, generator=g) > 0.5).float() if config.cond_mask else None
    t = torch.randint(0, 15, (batch,), generator=g)
    return x, t, lq, mask


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_detect_rebuild_gives_the_same_network(name):
    model = _tiny(name)
    state_dict = model.state_dict()
    detected = detect_unet_config(state_dict)
    assert detected == model.config.canonical()
    rebuilt = ResShiftUNet(detected).eval()
    assert _shapes(rebuilt.state_dict()) == _shapes(state_dict)
    rebuilt.load_state_dict(state_dict)
    m = model.size_multiple
    assert rebuilt.size_multiple == m
    x, t, lq, mask = _inputs(model.config, m, m)
    with torch.no_grad():
        assert torch.equal(rebuilt(x, t, lq=lq, mask=mask), model(x, t, lq=lq, mask=mask))


def test_detects_weights_saved_without_buffers():
    # No shift masks stored: the published pattern (deepest level built at one window) is assumed.
    model = _tiny("three_levels")
    params = {k: v for k, v in model.state_dict().items() if not k.endswith(("attn_mask", "position_index"))}
    assert detect_unet_config(params) == model.config.canonical()


def test_size_multiple_follows_levels_and_windows():
    assert _config("three_levels").size_multiple == 16  # middle: 4x4 window at 1/4 scale
    assert _config("mask_lq2").size_multiple == 4  # 2x2 window at 1/2 scale
    assert _config("updown_lq4").size_multiple == 32  # 4x4 window at 1/8 scale
    assert _config("pool_lq8").size_multiple == 8  # window shrunk to the 8x8 build size
    assert _config("pixel_fold4").size_multiple == 32  # 4x4 window at 1/2 of 1/4 scale


def test_pixel_unshuffle_is_stored_in_the_weights_and_checked():
    model = _tiny("pixel_fold4")
    state_dict = model.state_dict()
    assert int(state_dict["pixel_unshuffle"]) == 4
    assert "pixel_unshuffle" not in _tiny("three_levels").state_dict()  # published layouts stay key for key
    # Without the buffer the folded input convolution fits no published pattern: refused, not guessed.
    with pytest.raises(ArchitectureError, match="takes 96 channels"):
        detect_unet_config({k: v for k, v in state_dict.items() if k != "pixel_unshuffle"})
    bad = dict(state_dict, pixel_unshuffle=torch.tensor(3))
    with pytest.raises(ArchitectureError, match="not multiples of 9"):
        detect_unet_config(bad)
    with pytest.raises(ArchitectureError, match="one integer"):
        detect_unet_config(dict(state_dict, pixel_unshuffle=torch.tensor(4.0)))
    with pytest.raises(ArchitectureError, match="pixel_unshuffle must be 1 or more"):
        _config("pixel_fold4", pixel_unshuffle=0)


def test_any_multiple_of_size_multiple_runs_and_batches_agree():
    model = _tiny("three_levels")
    m = model.size_multiple
    x, t, lq, _ = _inputs(model.config, 2 * m, m, batch=2)  # not square, not the build size
    with torch.no_grad():
        out = model(x, t, lq=lq)
        assert out.shape == x.shape and torch.isfinite(out).all()
        # Batched shifted-window attention equals one image at a time.
        one = model(x[1:], t[1:], lq=lq[1:])
    torch.testing.assert_close(out[1:], one, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match=f"multiple of {m}"):
        model(x[..., : m + 4, :], t, lq=lq[..., : m + 4, :])


def test_half_precision_forward_is_close_to_fp32():
    model = _tiny("three_levels")
    m = model.size_multiple
    x, t, lq, _ = _inputs(model.config, m, 2 * m)
    with torch.no_grad():
        ref = model(x, t, lq=lq)
        half = model.to(torch.bfloat16)(x.bfloat16(), t, lq=lq.bfloat16())
    assert half.dtype == torch.bfloat16
    err = (half.float() - ref).abs().max().item()
    assert err < 0.05 * ref.abs().max().item(), err  # mostly the bf16 rounding of the weights


def test_input_errors_say_what_to_pass():
    model = _tiny("pool_lq8")
    x, t, lq, mask = _inputs(model.config, 8, 8)
    with pytest.raises(InputError, match="mask"):
        model(x, t, lq=lq)
    with pytest.raises(InputError, match="8x the latent"):
        model(x, t, lq=lq[..., :32, :32], mask=mask[..., :32, :32])


def test_attention_bias_cache_follows_the_weights():
    model = _tiny("three_levels")
    x, t, lq, _ = _inputs(model.config, 16, 16)
    with torch.no_grad():
        before = model(x, t, lq=lq)
        for name, p in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.mul_(-3.0)
        after = model(x, t, lq=lq)
    assert not torch.allclose(before, after)


def test_shift_mask_reproduces_the_published_one():
    # The published calculate_mask only masks the bottom row of windows, the same way for every
    # window of that row; inside a window, the label depends on the column. Read off its output.
    mask = shifted_window_mask(16, 32, 4, 2)
    assert mask.shape == (32, 16, 16)
    nonzero = (mask != 0).sum(dim=(1, 2))
    assert nonzero[:24].eq(0).all() and nonzero[24:].eq(128).all()
    label = torch.tensor([0, 0, 1, 1] * 4)  # column inside the window -> band (rows 12..15: 0,0,1,1)
    expected = torch.where(label[:, None] != label[None, :], -100.0, 0.0)
    assert torch.equal(mask[24], expected)
    # The forward pass uses the closed form: one mask for the bottom row, whatever the size.
    for h, w, window, shift in [(16, 32, 4, 2), (8, 8, 8, 4), (24, 8, 8, 3), (6, 4, 2, 1)]:
        full = shifted_window_mask(h, w, window, shift)
        bottom = w // window
        assert not full[:-bottom].any()
        assert torch.equal(full[-bottom:], bottom_row_mask(window, shift).expand(bottom, -1, -1))


# ------------------------------------------------------------------------------------------------
# Not a UNet
# ------------------------------------------------------------------------------------------------


def test_vqgan_weights_are_named_as_such():
    vq = {
        "encoder.conv_in.weight": torch.zeros(128, 3, 3, 3),
        "decoder.conv_out.weight": torch.zeros(3, 128, 3, 3),
        "quantize.embedding.weight": torch.zeros(8192, 3),
        "quant_conv.weight": torch.zeros(3, 3, 1, 1),
    }
    assert not looks_like_unet(vq)
    with pytest.raises(ArchitectureError, match="VQGAN/autoencoder checkpoint, not a ResShift UNet; load it as"):
        detect_unet_config(vq)


def test_garbage_and_damaged_weights_fail_with_the_reason():
    with pytest.raises(ArchitectureError, match=r"not a ResShift UNet.*found 2 tensors.*fc\.weight"):
        detect_unet_config({"fc.weight": torch.zeros(3, 3), "fc.bias": torch.zeros(3)})
    state_dict = dict(_tiny("three_levels").state_dict())
    del state_dict["middle_block.1.blocks.0.attn.relative_position_bias_table"]
    with pytest.raises(ArchitectureError, match="relative_position_bias_table, which is missing"):
        detect_unet_config(state_dict)
    state_dict = dict(_tiny("three_levels").state_dict())
    state_dict["input_blocks.1.1.blocks.0.attn.relative_position_bias_table"] = torch.zeros(10, 2)
    with pytest.raises(ArchitectureError, match=r"10 rows; expected \(2\*window-1\)\*\*2"):
        detect_unet_config(state_dict)


# ------------------------------------------------------------------------------------------------
# Parity with the published code (reference tensors made by zsyOAOA/ResShift @ 3ce1d81)
# ------------------------------------------------------------------------------------------------


def check_unet_reference_case(case_dir):
    """Build from the manifest, load the case's checkpoint, compare with the published output."""
    manifest = json.loads((case_dir / "manifest.json").read_text())
    tensors = load_file(str(case_dir / "tensors.safetensors"))
    config = UNetConfig.from_published(manifest["unet"], noise_channels=manifest.get("noise_channels", 0))
    model = ResShiftUNet(config).eval()
    state_dict = load_state_dict(case_dir / manifest["checkpoints"]["unet"])  # unwraps module./_orig_mod.
    model.load_state_dict(state_dict)
    assert detect_unet_config(state_dict) == config.canonical()
    with torch.no_grad():
        out = model(tensors["unet.x"], tensors["unet.t"], lq=tensors["unet.lq"], mask=tensors.get("unet.mask"))
    err = (out.double() - tensors["unet.out"].double()).abs().max().item()
    assert err <= manifest["tolerance"]["unet"], f"{case_dir.name}: max abs error {err:.3g}"


UNET_CASES = [c for c in reference_cases() if "unet.out" in load_file(str(c / "tensors.safetensors"))]


@pytest.mark.parametrize("case_dir", UNET_CASES, ids=lambda p: p.name)
def test_matches_published_unet(case_dir):
    check_unet_reference_case(case_dir)


@pytest.mark.parametrize("shift", [0, 4])
def test_swin_attention_in_bands_of_window_rows_equals_the_whole_map(monkeypatch, shift):
    from resshift_core.models import swin

    torch.manual_seed(0)
    block = swin.SwinBlock(dim=32, num_heads=2, window=8, shift=shift, mlp_ratio=2, resolution=64).eval()
    with torch.no_grad():
        block.attn.relative_position_bias_table.normal_()
        x = torch.randn(2, 32, 40, 24)  # 5 rows of windows, 3 per row
        monkeypatch.setattr(swin, "ATTENTION_BAND_ELEMENTS", 1 << 30)
        whole = block(x)
        monkeypatch.setattr(swin, "ATTENTION_BAND_ELEMENTS", 2 * 8 * 24 * 3 * 32)  # 2 window rows a band
        banded = block(x)
    with torch.enable_grad():  # the autograd path attends the whole map at once
        reference = block(x)
    assert (banded - whole).abs().max() < 1e-5
    assert (banded - reference).abs().max() < 1e-5
    # The bottom row of windows keeps its shift mask in the last band (it would differ without).
    if shift:
        unmasked = block._attend(
            block.norm1(x).permute(0, 2, 3, 1).roll((-shift, -shift), (1, 2)),
            block.attention_bias("cpu", torch.float32),
            last_row=False,
        )
        masked = block._attend(
            block.norm1(x).permute(0, 2, 3, 1).roll((-shift, -shift), (1, 2)),
            block.attention_bias("cpu", torch.float32),
            last_row=True,
        )
        assert (unmasked - masked).abs().max() > 1e-3

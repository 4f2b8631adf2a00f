"""The VQGAN (LDM VQModelTorch): published layouts, detection from weights, numerics, layouts, dtypes."""

import json
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import published_layouts, reference_cases
from resshift_core.checkpoints.detect_vqgan import (
    detect_vqgan_config,
    looks_like_vqgan,
    strip_training_keys,
)
from resshift_core.errors import ArchitectureError, InputError
from resshift_core.models import vqgan_blocks
from resshift_core.models.vqgan import VQGAN, VectorQuantizer, VQGANConfig
from resshift_core.tiny import tiny_vqgan, tiny_vqgan_config

AUTOENCODER_LAYOUTS = [p for p in published_layouts() if json.loads(p.read_text()).get("part") == "autoencoder"]

# Small, varied configs: 2-4 levels, blocks as int and per level, z/embed 3 and 8, attention.
# name -> (tiny task, overrides of that task's tiny VQGAN in resshift_core.tiny)
TINY_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "f2_plain": ("realsr", {"n_embed": 16, "ch_mult": (1, 2)}),
    "f4_embed8": ("realsr", {"embed_dim": 8, "n_embed": 24, "ch_mult": (1, 1, 2), "num_res_blocks": 2}),
    "f8_attn": (
        "faceir",
        {
            "n_embed": 32,
            "ch_mult": (1, 2, 2, 1),
            "num_res_blocks": (1, 2, 0, 1),
            "attn_resolutions": (16,),
            "resolution": 32,
        },
    ),
}


def _config(name: str, **more) -> VQGANConfig:
    task, overrides = TINY_CONFIGS[name]
    return tiny_vqgan_config(task, **overrides, **more)


def _tiny(name: str, seed: int = 0) -> VQGAN:
    """A tiny VQGAN with every parameter random (GroupNorm affine and codebook included)."""
    task, overrides = TINY_CONFIGS[name]
    model = tiny_vqgan(task, seed, **overrides)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if "norm" in key:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2 + (1.0 if key.endswith("weight") else 0.0))
        model.quantize.embedding.weight.normal_(generator=g)
    return model


def _image(shape, seed=1):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _meta_state(layout: dict) -> dict:
    return {k: torch.empty(shape, device="meta") for k, shape in layout["state_dict"].items()}


# -- published layouts --------------------------------------------------------------------------
@pytest.mark.parametrize("path", AUTOENCODER_LAYOUTS, ids=lambda p: p.stem)
def test_builds_every_published_layout(path):
    layout = json.loads(path.read_text())
    config = VQGANConfig.from_published(layout["params"])
    with torch.device("meta"):
        model = VQGAN(config)
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == list(layout["state_dict"].items())  # same keys, shapes and order
    assert sum(p.numel() for p in model.parameters()) == layout["parameter_count"]
    assert config.downsample_factor == 2 ** (len(config.ch_mult) - 1)
    assert config.latent_channels == layout["params"]["embed_dim"]


@pytest.mark.parametrize("path", AUTOENCODER_LAYOUTS, ids=lambda p: p.stem)
def test_detects_every_published_layout(path):
    layout = json.loads(path.read_text())
    state = _meta_state(layout)
    assert looks_like_vqgan(state)
    detected = detect_vqgan_config(state)
    published = VQGANConfig.from_published(layout["params"])
    assert detected.same_architecture(published)
    # Only the resolution is unreadable (attn_resolutions are [] in every published file).
    assert detected.to_dict() | {"resolution": 0} == published.to_dict() | {"resolution": 0}
    assert detected.resolution == 256


def test_published_factors():
    by_name = {p.stem: VQGANConfig.from_published(json.loads(p.read_text())["params"]) for p in AUTOENCODER_LAYOUTS}
    if "autoencoder_vq_f4" in by_name:
        assert (by_name["autoencoder_vq_f4"].downsample_factor, by_name["autoencoder_vq_f4"].latent_channels) == (4, 3)
    if "ffhq512_vq_f8_dim8_face" in by_name:
        cfg = by_name["ffhq512_vq_f8_dim8_face"]
        assert (cfg.downsample_factor, cfg.latent_channels, cfg.num_res_blocks) == (8, 8, (1, 2, 3, 4))


# -- config ---------------------------------------------------------------------------------------
def test_config_round_trips():
    for name in TINY_CONFIGS:
        cfg = _config(name)
        as_json = json.loads(json.dumps(cfg.to_dict()))
        assert VQGANConfig.from_dict(as_json) == cfg
        assert VQGANConfig.from_published(as_json) == cfg
        assert VQGANConfig.from_published(json.loads(json.dumps(cfg.to_published()))) == cfg


def test_config_rejects_what_it_cannot_build():
    with pytest.raises(ArchitectureError, match="num_res_blocks has 2 entries"):
        VQGANConfig(embed_dim=3, n_embed=8, z_channels=3, ch=32, ch_mult=(1, 2, 4), num_res_blocks=(1, 2))
    with pytest.raises(ArchitectureError, match="multiples of 32"):
        VQGANConfig(embed_dim=3, n_embed=8, z_channels=3, ch=48, ch_mult=(1, 2))
    published: dict[str, Any] = {
        "embed_dim": 3,
        "n_embed": 8,
        "ddconfig": {"z_channels": 3, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": []},
    }
    assert VQGANConfig.from_published(published).widths == (32, 64)
    for key, value in (("tanh_out", True), ("resamp_with_conv", False), ("attn_type", "linear")):
        bad = {**published, "ddconfig": {**published["ddconfig"], key: value}}
        with pytest.raises(ArchitectureError, match=key):
            VQGANConfig.from_published(bad)


def test_attention_levels_follow_the_published_rule():
    cfg = _config("f8_attn")  # resolution 32, levels at 32, 16, 8, 4
    assert cfg.encoder_attn_levels == cfg.decoder_attn_levels == (False, True, False, False)
    keys = VQGAN(cfg).state_dict().keys()
    assert "encoder.down.1.attn.1.q.weight" in keys and "decoder.up.1.attn.2.proj_out.bias" in keys
    assert not any(k.startswith(("encoder.down.0.attn", "decoder.up.2.attn")) for k in keys)


# -- detection -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_detection_round_trip_rebuilds_the_same_network(name):
    model = _tiny(name)
    state = model.state_dict()
    detected = detect_vqgan_config(state)
    assert detected.same_architecture(model.config)
    rebuilt = VQGAN(detected).eval()
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == [(k, v.shape) for k, v in state.items()]
    rebuilt.load_state_dict(state, strict=True)
    x = _image((1, 3, 16, 16))
    with torch.no_grad():
        assert torch.equal(rebuilt.encode(x), model.encode(x))
        z = model.encode(x)
        assert torch.equal(rebuilt.decode(z), model.decode(z))


def test_detection_ignores_training_keys_and_wrapper_prefixes():
    model = _tiny("f4_embed8")
    state = {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}
    state["module.loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
    state["module.loss.logvar"] = torch.zeros(())
    assert looks_like_vqgan(state)
    assert detect_vqgan_config(state).same_architecture(model.config)
    plain = dict(model.state_dict())
    plain["loss.logvar"] = torch.zeros(())
    assert sorted(strip_training_keys(plain)) == sorted(model.state_dict())


def test_detection_reads_double_z():
    cfg = _config("f2_plain", double_z=True)
    with torch.device("meta"):
        state = VQGAN(cfg).state_dict()
    assert detect_vqgan_config(state).double_z
    with pytest.raises(ArchitectureError, match="double_z"):
        VQGAN(cfg).encode(torch.zeros(1, 3, 8, 8))


def test_detection_of_a_unet_says_load_it_as_the_model():
    unet_like = {
        "time_embed.0.weight": torch.zeros(4, 4),
        "input_blocks.0.0.weight": torch.zeros(4, 3, 3, 3),
        "middle_block.0.in_layers.0.weight": torch.zeros(4),
    }
    assert not looks_like_vqgan(unet_like)
    with pytest.raises(
        ArchitectureError, match="this is a ResShift UNet checkpoint, not a VQGAN; load it as the model"
    ):
        detect_vqgan_config(unet_like)


def test_detection_errors_name_what_was_found_and_expected():
    with pytest.raises(ArchitectureError, match=r"not a VQGAN checkpoint.*found fc\.bias, fc\.weight"):
        detect_vqgan_config({"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)})
    state = _tiny("f2_plain").state_dict()
    with pytest.raises(ArchitectureError, match="no codebook"):
        detect_vqgan_config({k: v for k, v in state.items() if not k.startswith("quantize.")})
    with pytest.raises(ArchitectureError, match=r"post_quant_conv\.bias"):
        detect_vqgan_config({k: v for k, v in state.items() if k != "post_quant_conv.bias"})
    broken = dict(state)
    broken["decoder.up.1.block.0.conv1.weight"] = torch.zeros(64, 32, 3, 3)
    with pytest.raises(
        ArchitectureError,
        match=r"decoder\.up\.1\.block\.0\.conv1\.weight \(64, 32, 3, 3\) \(expected \(64, 64, 3, 3\)\)",
    ):
        detect_vqgan_config(broken)
    fewer = {k: v for k, v in state.items() if not k.startswith("decoder.up.0.block.1.")}
    with pytest.raises(ArchitectureError, match="one more"):
        detect_vqgan_config(fewer)


# -- quantiser -----------------------------------------------------------------------------------
def test_chunked_quantise_is_the_nearest_codebook_entry():
    torch.manual_seed(0)
    vq = VectorQuantizer(n_embed=50, embed_dim=3)
    vq.embedding.weight.data.normal_()
    vq.max_block_elements = 100  # two pixels per distance block: 35 blocks for 70 pixels
    h = torch.randn(2, 3, 5, 7)
    idx = vq.indices(h)
    pixels = h.permute(0, 2, 3, 1).reshape(-1, 3).double()
    dist = torch.cdist(pixels, vq.embedding.weight.double())
    best = dist.topk(2, dim=1, largest=False).values
    clear = (best[:, 1] - best[:, 0]) > 1e-4  # ties aside
    assert clear.float().mean() > 0.9
    assert torch.equal(idx.flatten()[clear], dist.argmin(dim=1)[clear])
    q = vq(h.contiguous(memory_format=torch.channels_last))
    assert q.shape == h.shape and q.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(q.permute(0, 2, 3, 1).reshape(-1, 3), vq.embedding.weight[idx.flatten()])
    assert vq(h).is_contiguous()


def test_quantise_distances_are_float32_for_half_inputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(n_embed=64, embed_dim=3)
    vq.embedding.weight.data.normal_()
    h = torch.randn(1, 3, 8, 8).bfloat16()
    assert torch.equal(vq.indices(h), vq.indices(h.float()))
    assert vq(h).dtype == torch.bfloat16


# -- layers ----------------------------------------------------------------------------------------
def test_upsample_as_transposed_conv_equals_nearest_then_conv():
    torch.manual_seed(0)
    up = vqgan_blocks.Upsample(32)
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        assert (up(x) - up.reference_forward(x)).abs().max() < 1e-5
        x_cl = x.contiguous(memory_format=torch.channels_last)
        assert (up(x_cl) - up.reference_forward(x)).abs().max() < 1e-5


def test_attention_matches_the_explicit_softmax():
    torch.manual_seed(0)
    attn = vqgan_blocks.AttnBlock(32).eval()
    x = torch.randn(2, 32, 4, 6)
    with torch.no_grad():
        h = attn.norm(x)
        q, k, v = (conv(h).flatten(2) for conv in (attn.q, attn.k, attn.v))  # B, C, N
        w = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(32), dim=2)  # B, Nq, Nk
        expected = x + attn.proj_out((v @ w.transpose(1, 2)).view_as(x))
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            assert (attn(inp) - expected).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_banded_pixel_attention_matches_float64_softmax(monkeypatch, dtype):
    g = torch.Generator().manual_seed(0)
    # Wide logits (|q.k|/sqrt(C) up to ~25): rounded to bf16 they would move the weights by a
    # few %, which the bf16 tolerance below rejects (4x over it: 0.012 against 0.003).
    q, k, v = (torch.randn(2, 50, 64, generator=g).mul(2.5).to(dtype) for _ in range(3))
    expected = torch.softmax(q.double() @ k.double().transpose(1, 2) / 8, dim=-1) @ v.double()
    monkeypatch.setattr(vqgan_blocks, "ATTENTION_SCORE_ELEMENTS", 7 * 50)  # bands of 7 rows, last one short
    got = vqgan_blocks.pixel_attention(q, k, v)
    assert got.dtype == dtype
    # fp32: GEMM rounding; bf16: the probabilities' and the output's rounding.
    tol = 1e-5 if dtype == torch.float32 else 6e-3
    assert (got.double() - expected).abs().max() < tol * v.abs().max().double()


def test_upsample_refolds_its_kernel_when_the_weight_changes():
    torch.manual_seed(0)
    up = vqgan_blocks.Upsample(8)
    x = torch.randn(1, 8, 3, 4)
    with torch.no_grad():
        up(x)
        up.conv.weight.mul_(2)  # in place: same storage, new version
        assert (up(x) - up.reference_forward(x)).abs().max() < 1e-5
        up.conv.weight = torch.nn.Parameter(torch.randn_like(up.conv.weight))  # new storage
        assert (up(x) - up.reference_forward(x)).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_channels_last_group_norm_is_accurate_far_from_zero(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 16, 16, generator=g) * 0.05 + 30  # mean 600x the spread
    weight, bias = torch.randn(64, generator=g), torch.randn(64, generator=g)
    x = x.to(dtype)
    expected = F.group_norm(x.double(), 32, weight.double(), bias.double(), 1e-6)
    got = vqgan_blocks.group_norm(
        x.contiguous(memory_format=torch.channels_last), 32, weight.to(dtype), bias.to(dtype), 1e-6
    )
    assert got.dtype == dtype and got.is_contiguous(memory_format=torch.channels_last)
    tol = 1e-4 if dtype == torch.float32 else 0.05  # bf16: rounding of the output only
    assert (got.double() - expected).abs().max() < tol


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_group_norm_fast_path_is_within_a_few_ulp(dtype):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(1, 64, 24, 24, generator=g) + 3).to(dtype)  # means 3 spreads from zero
    weight, bias = torch.rand(64, generator=g) + 0.5, torch.randn(64, generator=g)
    expected = F.group_norm(x.double(), 32, weight.double(), bias.double(), 1e-6)
    got = vqgan_blocks.group_norm(
        x.contiguous(memory_format=torch.channels_last), 32, weight.to(dtype), bias.to(dtype), 1e-6
    )
    ulp = 2.0 ** (-7 if dtype == torch.bfloat16 else -10)  # relative spacing of the dtype
    assert (got.double() - expected).abs().max() <= 4 * ulp * expected.abs().max()


# -- whole model: sizes, layouts, dtypes ------------------------------------------------------------------
def test_any_size_that_is_a_multiple_of_the_factor():
    model = _tiny("f4_embed8")
    x = _image((2, 3, 12, 20))
    with torch.no_grad():
        z = model.encode(x)
        assert z.shape == (2, 8, 3, 5)
        assert model.decode(z).shape == (2, 3, 12, 20)
        assert model(x, quantize=False).shape == x.shape
        # Batched and one-by-one agree.
        assert (model.encode(x[1:]) - z[1:]).abs().max() < 1e-5
    with pytest.raises(InputError, match=r"expects \(B, 8, H, W\)"):
        model.decode(torch.zeros(1, 3, 4, 4))


def test_channels_last_weights_and_inputs_match_nchw():
    model = _tiny("f8_attn")
    x = _image((1, 3, 16, 24))
    with torch.no_grad():
        z, out = model.encode(x), model.decode(model.encode(x), quantize=False)
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
        x_cl = x.contiguous(memory_format=torch.channels_last)
        z_cl = model.encode(x_cl)
        out_cl = model.decode(z_cl, quantize=False)
    assert z_cl.is_contiguous(memory_format=torch.channels_last) and z.is_contiguous()
    assert (z_cl - z).abs().max() < 1e-5 and (out_cl - out).abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("upcast", [None, False], ids=["auto", "native"])
def test_half_precision_is_close_to_float32(dtype, upcast):
    model = _tiny("f8_attn")
    with torch.no_grad():  # the same weights in both runs: rounded to the half dtype
        for p in model.parameters():
            p.copy_(p.to(dtype))
    x = _image((1, 3, 32, 32)).to(dtype)  # 4x4 latent: GroupNorm over 2x2 pixels amplifies rounding
    with torch.no_grad():
        z32 = model.encode(x.float())
        latent = z32.to(dtype)
        out32 = model.decode(latent.float(), quantize=False)
        model.to(dtype=dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]  # as above
        model.upcast_half_on_cpu = upcast
        z = model.encode(x)
        out = model.decode(latent, quantize=False)
    assert z.dtype == out.dtype == dtype
    float32_tol = 2.0**-8  # float32 compute: only the outputs are rounded to the half dtype
    # Half compute: every activation rounded (bf16: 2^-9), through ~30 layers of a tiny random network.
    half_tol = 0.1 if dtype == torch.bfloat16 else 0.02
    tol = float32_tol if model.compute_dtype(x.device) == torch.float32 else half_tol
    assert (z.float() - z32).abs().max() <= tol * max(1.0, z32.abs().max().item())
    assert (out.float() - out32).abs().max() <= tol * max(1.0, out32.abs().max().item())


def test_compute_dtype_policy():
    model = _tiny("f2_plain")
    assert model.compute_dtype(torch.device("cpu")) == torch.float32
    model.to(torch.bfloat16)
    model.upcast_half_on_cpu = True
    assert model.compute_dtype("cpu") == torch.float32
    model.upcast_half_on_cpu = False
    assert model.compute_dtype("cpu") == torch.bfloat16


# -- parity with the published code (the lead moves this to tests/test_reference_parity.py) ------------
def check_autoencoder_reference_case(case) -> None:
    """encode / quantise+decode / plain decode of the published VQModelTorch, from a case folder."""
    from resshift_core.checkpoints.io import load_state_dict

    manifest = json.loads((case / "manifest.json").read_text())
    tensors = load_file(str(case / "tensors.safetensors"))
    tol = manifest["tolerance"]["autoencoder"]
    state = load_state_dict(case / manifest["checkpoints"]["autoencoder"])  # unwraps state_dict / module.
    config = VQGANConfig.from_published(manifest["autoencoder"])
    assert detect_vqgan_config(state).same_architecture(config)
    model = VQGAN(config).eval().requires_grad_(False)
    model.load_state_dict(strip_training_keys(state), strict=True)
    with torch.no_grad():
        encoded = model.encode(tensors["autoencoder.image"])
        decoded = model.decode(tensors["autoencoder.encoded"], quantize=True)
        plain = model.decode(tensors["autoencoder.encoded"], quantize=False)
    for name, got in (("encoded", encoded), ("decoded", decoded), ("decoded_unquantized", plain)):
        expected = tensors[f"autoencoder.{name}"]
        assert got.shape == expected.shape, name
        err = (got.double() - expected.double()).abs().max().item()
        assert err <= tol, f"{case.name}: autoencoder.{name} differs by {err:.3g} (tolerance {tol})"


@pytest.mark.parametrize("case", reference_cases(), ids=lambda p: p.name)
def test_autoencoder_matches_published_reference(case):
    if not any(k.startswith("autoencoder.") for k in load_file(str(case / "tensors.safetensors"))):
        pytest.skip("no autoencoder tensors in this case")
    check_autoencoder_reference_case(case)


def test_gradients_flow_in_training_mode():
    """In-place shortcuts are for inference only: with autograd on, everything stays differentiable."""
    model = _tiny("f8_attn").train().requires_grad_(True)
    x = _image((1, 3, 16, 16)).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    out = model.decode(model.encode(x), quantize=True)
    out.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert model.get_parameter("encoder.down.0.block.0.norm1.weight").grad is not None
    assert model.get_parameter("decoder.up.1.upsample.conv.weight").grad is not None

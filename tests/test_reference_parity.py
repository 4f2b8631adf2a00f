"""Parity with the published ResShift code (zsyOAOA/ResShift @ 3ce1d81) and the published
one-step SinSR code (wyf0912/SinSR @ f173549).

Driven by the manifests alone: every case folder in the RESSHIFT_REFERENCE_DIR folders (default
../shared/reference/cases and ../shared/reference/cases_one_step) is run for each kind of tensor
it holds, within its own tolerances, with every diffusion setting of its manifest (respacing,
one-step sampling, a noise map), so a further case in either format runs without a code change.
"""

import json
import math
from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from conftest import reference_cases
from resshift_core.checkpoints.loading import load_unet, load_vae
from resshift_core.models.unet import UNetConfig
from resshift_core.models.vqgan import VQGANConfig
from resshift_core.pipeline import ResShiftPipeline
from resshift_core.presets import DiffusionPreset
from resshift_core.sampler import ExplicitNoise, q_sample, scale_model_input
from resshift_core.schedule import make_schedule

CASES = reference_cases()
if not CASES:
    pytest.skip("no reference cases found (set RESSHIFT_REFERENCE_DIR)", allow_module_level=True)


@cache
def _case(path):
    manifest = json.loads((path / "manifest.json").read_text())
    return manifest, load_file(str(path / "tensors.safetensors"))


def _with(prefix):
    """The cases holding tensors of a kind (e.g. 'unet.'), as pytest params."""
    return [pytest.param(c, id=c.name) for c in CASES if any(k.startswith(prefix) for k in _case(c)[1])]


def _preset(manifest):
    return DiffusionPreset.from_published(
        manifest["diffusion"],
        name="reference",
        sampling=manifest.get("sampling"),
        noise_map="concat" if manifest.get("noise_channels") else "none",
    )


def _published_schedule(manifest):
    """The chain the published code builds: respaced when the manifest says so (one-step
    students sample one step of the full chain, whose tensors the case holds)."""
    respacing = manifest["diffusion"].get("timestep_respacing")
    return make_schedule(_preset(manifest).schedule, respacing, "published")


def _models(case, manifest):
    preset = _preset(manifest)
    unet = load_unet(case / manifest["checkpoints"]["unet"], preset=preset)
    vae = load_vae(case / manifest["checkpoints"]["autoencoder"])
    return unet, vae


def _max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


@pytest.mark.parametrize("case", _with("schedule."))
def test_schedule(case):
    manifest, t = _case(case)
    ours = _published_schedule(manifest).as_dict()
    tol = manifest["tolerance"]["schedule"]
    names = [k.split(".", 1)[1] for k in t if k.startswith("schedule.")]
    assert names
    for name in names:
        np.testing.assert_allclose(ours[name], t[f"schedule.{name}"].numpy(), rtol=0, atol=tol, err_msg=name)


@pytest.mark.parametrize("case", _with("unet."))
def test_unet(case):
    manifest, t = _case(case)
    unet, _ = _models(case, manifest)
    # The architecture read off the weights is the published config.
    published = UNetConfig.from_published(manifest["unet"], noise_channels=manifest.get("noise_channels", 0))
    for field in (
        "model_channels",
        "channel_mult",
        "num_res_blocks",
        "in_channels",
        "out_channels",
        "swin_depth",
        "swin_embed_dim",
        "window_size",
        "cond_mask",
        "lq_size",
        "noise_channels",
    ):
        assert getattr(unet.config, field) == getattr(published, field), field
    kwargs = {"lq": t["unet.lq"]}
    if "unet.mask" in t:
        kwargs["mask"] = t["unet.mask"]
    with torch.no_grad():
        out = unet.model(t["unet.x"], t["unet.t"], **kwargs)
    assert _max_err(out, t["unet.out"]) <= manifest["tolerance"]["unet"]


@pytest.mark.parametrize("case", _with("autoencoder."))
def test_autoencoder(case):
    manifest, t = _case(case)
    vae = load_vae(case / manifest["checkpoints"]["autoencoder"])
    published = VQGANConfig.from_published(manifest["autoencoder"])
    assert vae.config.to_dict() | {"resolution": 0} == published.to_dict() | {"resolution": 0}
    tol = manifest["tolerance"]["autoencoder"]
    with torch.no_grad():
        encoded = vae.model.encode(t["autoencoder.image"])
        assert _max_err(encoded, t["autoencoder.encoded"]) <= tol
        # Decode from the published encoding so the two checks are independent.
        decoded = vae.model.decode(t["autoencoder.encoded"], quantize=True)
        assert _max_err(decoded, t["autoencoder.decoded"]) <= tol
        plain = vae.model.decode(t["autoencoder.encoded"], quantize=False)
        assert _max_err(plain, t["autoencoder.decoded_unquantized"]) <= tol


@pytest.mark.parametrize("case", _with("train."))
def test_training_forward_process(case):
    manifest, t = _case(case)
    _, vae = _models(case, manifest)
    preset = _preset(manifest)
    schedule = make_schedule(preset.schedule)
    tol = manifest["tolerance"]["train"]
    with torch.no_grad():
        z_start = vae.model.encode(t["train.hr"]) * preset.scale_factor
        up = F.interpolate(t["train.y"], scale_factor=preset.sf, mode="bicubic")
        z_y = vae.model.encode(up) * preset.scale_factor
    assert _max_err(z_start, t["train.z_start"]) <= tol
    assert _max_err(z_y, t["train.z_y"]) <= tol
    z_t = q_sample(t["train.z_start"], t["train.z_y"], t["train.t"], schedule, t["train.noise"])
    assert _max_err(z_t, t["train.z_t"]) <= tol
    model_input = scale_model_input(t["train.z_t"], t["train.t"], schedule)
    assert _max_err(model_input, t["train.model_input"]) <= tol


def _psnr(a, b, peak):
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", _with("sampler."))
def test_whole_sampler(case, channels_last):
    """LR image -> bicubic, encode, prior, T reverse steps, decode: our pipeline end to end."""
    manifest, t = _case(case)
    unet, vae = _models(case, manifest)
    pipe = ResShiftPipeline(unet, vae, channels_last=channels_last)
    steps = pipe.resolve_steps(None)  # the manifest's chain: all, respaced or one step
    draws = sorted((k for k in t if k.startswith("sampler.noise.step")), key=lambda k: int(k.rsplit("step", 1)[1]))
    # one draw per reverse step (the last, at t = 0, multiplied by zero); a one-step student has none
    assert len(draws) == (0 if steps == 1 and manifest.get("sampling", {}).get("one_step") else steps)
    noise = ExplicitNoise(t["sampler.noise.prior"], [t[k] for k in draws], t.get("sampler.noise.map"))
    y01 = (t["sampler.y"] + 1) / 2  # the pipeline takes images in [0, 1]
    masks = (t["sampler.mask"] + 1) / 2 if "sampler.mask" in t else None
    prepared = pipe.prepare(y01, masks)
    assert prepared.padding.bottom == 0 and prepared.padding.right == 0, "reference sizes need no padding"
    z_y = pipe.encode(prepared)
    out = pipe.decode_raw(pipe.sample(z_y, prepared, noise), prepared)
    assert out.shape == t["sampler.out"].shape
    assert _psnr(out, t["sampler.out"], peak=2.0) >= manifest["tolerance"]["sampler_psnr_db"]

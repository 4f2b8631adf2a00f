"""Parity with the published ResShift code (zsyOAOA/ResShift @ 3ce1d81).

Driven by the manifests alone: every case folder in RESSHIFT_REFERENCE_DIR (default
../shared/reference/cases) is run for each kind of tensor it holds, within its own tolerances,
so a further case in the same format runs without a code change.
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
    return DiffusionPreset.from_published(manifest["diffusion"], name="reference")


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
    schedule = make_schedule(_preset(manifest).schedule)
    ours = schedule.as_dict()
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
    published = UNetConfig.from_published(manifest["unet"])
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
    steps = pipe.preset.steps
    noise = ExplicitNoise(t["sampler.noise.prior"], [t[f"sampler.noise.step{i}"] for i in range(steps)])
    y01 = (t["sampler.y"] + 1) / 2  # the pipeline takes images in [0, 1]
    masks = (t["sampler.mask"] + 1) / 2 if "sampler.mask" in t else None
    prepared = pipe.prepare(y01, masks)
    assert prepared.padding.bottom == 0 and prepared.padding.right == 0, "reference sizes need no padding"
    z_y = pipe.encode(prepared)
    out = pipe.decode_raw(pipe.sample(z_y, prepared, noise), prepared)
    assert out.shape == t["sampler.out"].shape
    assert _psnr(out, t["sampler.out"], peak=2.0) >= manifest["tolerance"]["sampler_psnr_db"]

"""One-step ResShift students (SinSR, RSD, Distilled-ResShift): their layouts, presets, files in
Distilled-ResShift's own format, and what their noise map does through the whole pipeline."""

import dataclasses
import json
import re
import warnings
from pathlib import Path

import pytest
import torch

from conftest import SHARED, one_torch_thread
from resshift_core import registry
from resshift_core.checkpoints.detect_unet import detect_unet_config
from resshift_core.checkpoints.fitting import fitting_presets
from resshift_core.checkpoints.loading import LoadedModel, inspect_checkpoint, load_unet, resolve_preset
from resshift_core.download import DownloadError, fetch_checkpoint
from resshift_core.errors import CheckpointError
from resshift_core.model_files import resolve_checkpoint
from resshift_core.models.unet import ResShiftUNet, UNetConfig
from resshift_core.pipeline import ExplicitNoise, ResShiftPipeline
from resshift_core.tiling import TilingConfig
from resshift_core.tiny import make_tiny, write_distilled_student, zero_noise_weights

ONE_STEP_LAYOUTS = SHARED / "reference" / "checkpoint_layouts_one_step"
LAYOUT_FILES = sorted(p for p in ONE_STEP_LAYOUTS.glob("*.json") if p.name != "index.json")
# The presets a plain ResShift v1 layout can be sampled with, and those of one with a noise channel.
V1_PRESETS = {"realsr_x4_s15", "realsr_x4_s4", "bicsr_x4_s4", "sinsr_x4"}
NOISE_PRESETS = {"rsd_x4", "distilled_x4", "distilled_x2"}
X4_FILE, X2_FILE = "rsd_student_final.safetensors", "rsd_student_18k.safetensors"
LR_SIDE = 16  # input pixels: one 16 x 16 latent for the tiny x4 students


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _layout(path: Path) -> dict:
    return json.loads(path.read_text())


def _meta_state_dict(shapes: dict) -> dict:
    """A state dict of the layout's shapes on the meta device (nothing allocated)."""
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


def _meta_shapes(config: UNetConfig) -> dict:
    with torch.device("meta"):
        return {k: list(v.shape) for k, v in ResShiftUNet(config).state_dict().items()}


def _noiseless_copy(unet: LoadedModel) -> LoadedModel:
    """The same weights without the noise-map input (the concatenated channel or noise_proj
    dropped), sampled as `unet` is but without a noise map."""
    state = {k: v.clone() for k, v in unet.model.state_dict().items() if not k.startswith("noise_proj.")}
    if unet.model.config.noise_injection == "concat":
        n = unet.model.config.noise_channels
        state["input_blocks.0.0.weight"] = state["input_blocks.0.0.weight"][:, :-n].clone()
    assert unet.preset is not None
    return load_unet(state, preset=dataclasses.replace(unet.preset, noise_map="none"))


def _shared_vae():
    """One tiny f4 VQGAN for every student here (they all use ResShift's autoencoder_vq_f4)."""
    return make_tiny("distilled", seed=9)[1]


def _latent_shape(pipe: ResShiftPipeline, images: torch.Tensor) -> tuple[int, ...]:
    return tuple(pipe.encode(pipe.prepare(images)).shape)


# ------------------------------------------------------------------------------------------------
# The published layouts: registry entries, detection, presets by name and by layout
# ------------------------------------------------------------------------------------------------


def test_the_one_step_layouts_are_here():
    if not ONE_STEP_LAYOUTS.is_dir():
        pytest.skip(f"{ONE_STEP_LAYOUTS} is absent")
    assert {p.name for p in LAYOUT_FILES} == {"SinSR_v1.json", "SinSR_v2.json", "rsd_ema_model_2800.json"}


@pytest.mark.parametrize("path", LAYOUT_FILES, ids=lambda p: p.stem)
def test_registry_architecture_builds_the_layout_key_for_key(path):
    layout = _layout(path)
    entry = registry.find(layout["file"])
    assert entry is not None and entry.architecture is not None
    config = UNetConfig.from_published(entry.architecture)
    assert _meta_shapes(config) == layout["state_dict"]
    assert entry.parameter_count == layout["parameter_count"]
    assert entry.vae == "autoencoder_vq_f4" and entry.license and entry.what


@pytest.mark.parametrize("path", LAYOUT_FILES, ids=lambda p: p.stem)
def test_layout_by_its_published_name_gets_the_registry_preset(path):
    layout = _layout(path)
    config = detect_unet_config(_meta_state_dict(layout["state_dict"]))
    assert config.noise_channels == layout.get("noise_channels", 0)
    entry = registry.find(layout["file"])
    assert entry is not None
    choice = resolve_preset(config, f"/models/{layout['file']}", {}, None)
    assert choice.preset.name == entry.preset == ("rsd_x4" if config.noise_channels else "sinsr_x4")
    assert choice.source == f"registry:{entry.name}" and choice.warning is None
    assert choice.preset.one_step and choice.preset.steps == layout["diffusion"]["steps"]


@pytest.mark.parametrize("path", LAYOUT_FILES, ids=lambda p: p.stem)
def test_layout_under_an_unknown_name_lists_the_presets_that_fit(path):
    layout = _layout(path)
    config = detect_unet_config(_meta_state_dict(layout["state_dict"]))
    fitting = set(fitting_presets(config))
    choice = resolve_preset(config, "/models/my_download.pth", {}, None)
    assert choice.warning is not None and choice.source.startswith("layout")
    assert choice.preset.name in fitting  # the guess is one of the presets that fit
    if config.noise_channels:
        assert fitting == NOISE_PRESETS and choice.preset.name == "rsd_x4"
    else:
        assert fitting >= V1_PRESETS and not fitting & NOISE_PRESETS
        assert not fitting & {"realsr_x2_s4", "inpaint_s4", "faceir_s4"}


PUBLISHED_FITS = {
    "resshift_faceir_s4": ["faceir_s4"],
    "resshift_inpainting_imagenet_s4": ["inpaint_s4"],
    "resshift_inpainting_face_s4": ["inpaint_s4"],
    "realsr_x2": ["realsr_x2_s4"],
    "resshift_realsrx4_s4_v3": sorted(V1_PRESETS | {"pixel_realsr_x4_s4", "tiny_realsr_x4"}),
}


@pytest.mark.parametrize("stem", sorted(PUBLISHED_FITS))
def test_published_layouts_fit_only_the_presets_of_their_kind(stem):
    """A mask input fits inpainting alone, an 8-channel latent face restoration alone (its f8
    VQGAN), one LR halving x2 alone; a 3-channel UNet without an LR feature extractor also fits
    the pixel-space presets, as the weights cannot tell pixels from latents."""
    path = SHARED / "reference" / "checkpoint_layouts" / f"{stem}.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    config = detect_unet_config(_meta_state_dict(_layout(path)["state_dict"]))
    assert fitting_presets(config) == PUBLISHED_FITS[stem]


def test_inpainting_presets_fit_exactly_the_unets_with_a_mask_input():
    from resshift_core.tiny import tiny_unet_config

    assert fitting_presets(tiny_unet_config("inpaint")) == ["inpaint_s4"]
    # The same LR branch without the mask channel is no inpainting model, and no x1 one either.
    assert fitting_presets(tiny_unet_config("inpaint", cond_mask=False)) == []


def test_a_noise_proj_layout_is_guessed_as_a_distilled_student():
    sinsr = _layout(ONE_STEP_LAYOUTS / "SinSR_v1.json")["state_dict"]
    width = sinsr["input_blocks.0.0.weight"][0]
    shapes = {**sinsr, "noise_proj.weight": [width, 3, 3, 3], "noise_proj.bias": [width]}
    config = detect_unet_config(_meta_state_dict(shapes))
    assert (config.noise_channels, config.noise_injection) == (3, "add")
    assert set(fitting_presets(config)) == {"distilled_x4", "distilled_x2"}
    choice = resolve_preset(config, "/models/student.pth", {}, None)
    assert (choice.preset.name, choice.preset.noise_map) == ("distilled_x4", "add")
    assert choice.warning is not None and "distilled_x2" in choice.warning
    # Under its published file name (no metadata, e.g. after a conversion), the registry's
    # student preset with the noise map where these weights take it.
    named = resolve_preset(config, f"/models/{X2_FILE}", {}, None)
    assert (named.preset.name, named.preset.noise_map, named.preset.sf) == ("distilled_x2", "add", 2)
    chosen = resolve_preset(config, "/models/student.pth", {}, "distilled_x2")  # named by the user
    assert (chosen.source, chosen.preset.noise_map) == ("explicit", "add")


def test_the_students_registry_entries():
    by_name = {e.name: e for e in registry.entries()}
    expected = {
        "sinsr_v1": ("SinSR_v1.pth", "sinsr_x4"),
        "sinsr_v2": ("SinSR_v2.pth", "sinsr_x4"),
        "rsd_x4": ("ema_model_2800.pth", "rsd_x4"),
        "distilled_resshift_x4": (X4_FILE, "distilled_x4"),
        "distilled_resshift_x2": (X2_FILE, "distilled_x2"),
    }
    for name, (file, preset) in expected.items():
        entry = by_name[name]
        assert (entry.file, entry.preset, entry.part, entry.vae) == (file, preset, "unet", "autoencoder_vq_f4")
        assert entry.sha256 is None and entry.size_bytes is None  # not verified: not claimed
    assert by_name["sinsr_v1"].url == "https://github.com/wyf0912/SinSR/releases/download/v1.0/SinSR_v1.pth"
    assert by_name["rsd_x4"].url is None and not by_name["rsd_x4"].downloadable
    assert by_name["distilled_resshift_x4"].hf_repo == "sorryhyun/Distilled-ResShift-4x"
    assert by_name["distilled_resshift_x2"].hf_repo == "sorryhyun/Distilled-ResShift-2x"
    assert by_name["distilled_resshift_x4"].parameter_count is None  # no layout of theirs to count


# ------------------------------------------------------------------------------------------------
# RSD by construction: a zero noise channel is the same network without it
# ------------------------------------------------------------------------------------------------


def _rsd_pair(zero: bool, seed: int = 3) -> tuple[ResShiftPipeline, ResShiftPipeline]:
    """(RSD pipeline, the pipeline of the same UNet without its noise channel), one VQGAN."""
    rsd, vae = make_tiny("rsd", seed)
    if zero:
        zero_noise_weights(rsd.model)
    plain, _ = make_tiny("sinsr", seed)
    weights = dict(rsd.model.state_dict())
    weights["input_blocks.0.0.weight"] = weights["input_blocks.0.0.weight"][:, :-1]
    plain.model.load_state_dict(weights)
    return ResShiftPipeline(rsd, vae), ResShiftPipeline(plain, vae)


def _rsd_prior_draw(seed: int, latent: tuple[int, ...]) -> torch.Tensor:
    """The prior RSD's seeded run uses: a seed's generator gives the noise map first, then x_T."""
    gen = torch.Generator().manual_seed(seed)
    torch.randn((1, *latent[2:]), generator=gen)  # the 1-channel noise map
    return torch.randn(latent[1:], generator=gen)[None]


def test_rsd_with_zero_noise_weights_is_the_unet_without_the_channel():
    """RSD widened ResShift v1's first convolution by one zero-initialised channel for the noise
    map. With those weights zero, a seeded RSD restore must equal, bit for bit, the UNet without
    the channel (a SinSR/v1 network with the other weights) given the same x_T. The two do not
    draw alike from one seed: RSD's generator gives the noise map first and x_T second, the v1
    network's gives x_T first. So the v1 network gets RSD's x_T explicitly (ExplicitNoise of the
    second draw); a pipeline that drew the map after the prior, or put the channel elsewhere,
    fails here. The plain seeded v1 run (another x_T) must differ, or the comparison proves nothing."""
    rsd, plain = _rsd_pair(zero=True)
    image = torch.rand(1, 3, LR_SIDE, LR_SIDE)
    prior = _rsd_prior_draw(11, _latent_shape(rsd, image))
    out = rsd.restore(image, seeds=[11], tiling=None)
    assert torch.equal(out, plain.restore(image, noise=ExplicitNoise(prior, []), tiling=None))
    assert not torch.equal(out, plain.restore(image, seeds=[11], tiling=None))


def test_rsd_noise_map_changes_the_output_and_a_seed_reproduces_it():
    rsd, plain = _rsd_pair(zero=False)
    image = torch.rand(1, 3, LR_SIDE, LR_SIDE)
    latent = _latent_shape(rsd, image)
    out = rsd.restore(image, seeds=[11], tiling=None)
    assert torch.equal(out, rsd.restore(image, seeds=[11], tiling=None))
    assert not torch.equal(out, rsd.restore(image, seeds=[12], tiling=None))
    prior = _rsd_prior_draw(11, latent)
    assert not torch.equal(out, plain.restore(image, noise=ExplicitNoise(prior, []), tiling=None))
    # Only the map differs between these two: it reaches the output.
    maps = torch.randn(2, 1, 1, *latent[2:])
    a = rsd.restore(image, noise=ExplicitNoise(prior, [], noise_map=maps[0]), tiling=None)
    b = rsd.restore(image, noise=ExplicitNoise(prior, [], noise_map=maps[1]), tiling=None)
    assert (a - b).abs().max() > 1e-3


def test_rsd_batch_images_equal_each_alone():
    """Image i of a batch with seed s is the image alone with seed s: its noise map and x_T
    come from its own seed. Batched convolutions round differently in the last bits, so this
    is to 1e-5 (as test_pipeline's batch test); a map drawn from a batch-mate's seed moves the
    output by far more, which the other seed shows."""
    rsd, _ = _rsd_pair(zero=False)
    # Seeded: drawn from the global generator, the images depended on the tests run before
    # (one suite order gave inputs whose batch and single runs differed by 3.6e-3; 60 seeded
    # inputs differ by at most 5.6e-6).
    images = torch.rand(2, 3, LR_SIDE, LR_SIDE, generator=torch.Generator().manual_seed(0))
    both = rsd.restore(images, seeds=[5, 7], tiling=None)
    for i, seed in enumerate((5, 7)):
        alone = rsd.restore(images[i : i + 1], seeds=[seed], tiling=None)
        torch.testing.assert_close(both[i : i + 1], alone, atol=1e-5, rtol=0)
    assert (both[1:] - rsd.restore(images[1:], seeds=[5], tiling=None)).abs().max() > 1e-3


def test_rsd_tiled_equals_untiled_in_one_tile_and_runs_on_a_larger_image():
    rsd, _ = _rsd_pair(zero=False)
    image = torch.rand(1, 3, LR_SIDE, LR_SIDE)
    whole = rsd.restore(image, seeds=[2], tiling=None)
    assert torch.equal(whole, rsd.restore(image, seeds=[2], tiling=TilingConfig(tile=512, vae_tile=512)))
    large = torch.rand(1, 3, 40, 24)
    tiled = rsd.restore(large, seeds=[2], tiling=TilingConfig(tile=16, overlap=8, vae_tile=12, vae_overlap=4))
    assert tiled.shape == (1, 3, 160, 96) and torch.isfinite(tiled).all()


# ------------------------------------------------------------------------------------------------
# Distilled-ResShift files in their own format
# ------------------------------------------------------------------------------------------------

VARIANTS = [
    (mode, cond, file) for mode in ("concat", "add") for cond in ("latent", "pixel") for file in (X4_FILE, X2_FILE)
]


@pytest.mark.parametrize(("mode", "cond", "file"), VARIANTS)
def test_distilled_file_loads_with_its_scale_condition_and_noise_map_and_runs(tmp_path, mode, cond, file):
    path = write_distilled_student(tmp_path / file, noise_mode=mode, cond_lq=cond, module_prefix=mode == "add")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a registry file name: nothing is guessed
        unet = load_unet(path)
    preset = unet.preset
    assert preset is not None and unet.preset_source == "metadata (Distilled-ResShift)"
    sf = 4 if file == X4_FILE else 2
    assert (preset.name, preset.sf) == (f"distilled_x{sf}", sf)
    assert preset.condition == {"latent": "latent", "pixel": "lr_at_latent"}[cond]
    assert preset.noise_map == mode and unet.model.config.noise_channels == (1 if mode == "concat" else 3)
    assert (preset.prior, preset.quantize, preset.one_step) == ("kappa", False, True)
    assert unet.registry_name == f"distilled_resshift_x{sf}"
    out = ResShiftPipeline(unet, _shared_vae()).restore(torch.rand(1, 3, 8, 8), seeds=[0], tiling=None)
    assert out.shape == (1, 3, 8 * sf, 8 * sf) and torch.isfinite(out).all()


def test_distilled_file_defaults_are_theirs(tmp_path):
    # No cond_lq (their files before it existed) and no noise_channels: latent, 1 channel concat.
    path = write_distilled_student(tmp_path / X4_FILE, cond_lq=None, metadata={"noise_mode": "concat"})
    unet = load_unet(path)
    assert unet.preset is not None and (unet.preset.condition, unet.preset.noise_map) == ("latent", "concat")
    add = write_distilled_student(tmp_path / X2_FILE, noise_mode="add", metadata={"noise_mode": "add"})
    assert load_unet(add).model.config.noise_channels == 3  # add's default


def test_distilled_file_of_unknown_scale_is_x4_with_a_warning(tmp_path):
    path = write_distilled_student(tmp_path / "my_student.safetensors", noise_mode="add", cond_lq="pixel")
    with pytest.warns(UserWarning, match="choose the preset distilled_x2 for an x2 student"):
        unet = load_unet(path)
    assert unet.preset is not None and (unet.preset.name, unet.preset.noise_map) == ("distilled_x4", "add")
    assert unet.preset_source.startswith("metadata (Distilled-ResShift)") and "x4 assumed" in unet.preset_source
    info = inspect_checkpoint(path)
    assert info["preset"]["condition"] == "lr_at_latent" and info["preset"]["noise_map"] == "add"
    assert info["fitting_presets"] == ["distilled_x2", "distilled_x4"]


def _two_maps(pipe: ResShiftPipeline, image: torch.Tensor, seed: int = 4):
    """Outputs for one x_T and two different noise maps, and that x_T."""
    latent = _latent_shape(pipe, image)
    gen = torch.Generator().manual_seed(seed)
    prior = torch.randn(latent, generator=gen)
    maps = torch.randn(2, latent[0], pipe.unet_config.noise_channels, *latent[2:], generator=gen)
    outs = [pipe.restore(image, noise=ExplicitNoise(prior, [], noise_map=m), tiling=None) for m in maps]
    return outs, prior


@pytest.mark.parametrize(("mode", "cond"), [("concat", "latent"), ("add", "pixel"), ("add", "latent")])
def test_distilled_zero_noise_weights_give_the_noiseless_result(tmp_path, mode, cond):
    """With the noise weights zero (as both noise modes are initialised) the map must change
    nothing: the same loaded network gives the same output, bit for bit, for two maps; and that
    output is the one of the same weights without the noise input, for the same x_T. That last
    comparison allows float rounding: a model read from a safetensors file holds its weights at
    the file's unaligned offsets, and vectorised sums round there in the last bits (1e-6)."""
    path = write_distilled_student(tmp_path / X4_FILE, noise_mode=mode, cond_lq=cond, zero_noise=True)
    unet, vae = load_unet(path), _shared_vae()
    assert unet.preset is not None
    pipe = ResShiftPipeline(unet, vae)
    image = torch.rand(1, 3, LR_SIDE, LR_SIDE)
    (a, b), prior = _two_maps(pipe, image)
    assert torch.equal(a, b)
    noiseless = ResShiftPipeline(_noiseless_copy(unet), vae, preset=None)
    assert noiseless.preset.condition == unet.preset.condition
    expected = noiseless.restore(image, noise=ExplicitNoise(prior, []), tiling=None)
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["concat", "add"])
def test_distilled_noise_weights_change_the_output(tmp_path, mode):
    path = write_distilled_student(tmp_path / X4_FILE, noise_mode=mode)
    pipe = ResShiftPipeline(load_unet(path), _shared_vae())
    (a, b), _ = _two_maps(pipe, torch.rand(1, 3, LR_SIDE, LR_SIDE))
    assert (a - b).abs().max() > 1e-3


def test_distilled_condition_reaches_the_network(tmp_path):
    """latent and pixel conditioning feed the UNet different inputs: the same weights differ."""
    image = torch.rand(1, 3, LR_SIDE, LR_SIDE)
    outs = []
    for cond in ("latent", "pixel"):
        path = write_distilled_student(tmp_path / cond / X4_FILE, cond_lq=cond)
        outs.append(ResShiftPipeline(load_unet(path), _shared_vae()).restore(image, seeds=[1], tiling=None))
    assert (outs[0] - outs[1]).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("metadata", "mode", "words"),
    [
        ({"noise_mode": "sum"}, "concat", "noise_mode='sum', which is unknown (known: concat, add)"),
        (
            {"noise_mode": "concat", "cond_lq": "rgb"},
            "concat",
            "cond_lq='rgb', which is unknown (known: latent, pixel)",
        ),
        (
            {"noise_mode": "concat", "noise_channels": "2"},
            "concat",
            "says a 2-channel noise map (concat) but the weights take a 1-channel",
        ),
        (
            {"noise_mode": "concat", "noise_channels": "one"},
            "concat",
            "noise_channels='one', which is not a whole number",
        ),
        (
            {"noise_mode": "add", "noise_channels": "1"},
            "concat",
            "(add) but the weights take a 1-channel noise map (concat)",
        ),
        ({"noise_mode": "concat"}, "add", "(concat) but the weights take a 3-channel noise map (add)"),
    ],
    ids=["mode", "cond", "channels", "channels_text", "add_on_concat", "concat_on_add"],
)
def test_distilled_metadata_errors_are_one_sentence(tmp_path, metadata, mode, words):
    path = write_distilled_student(tmp_path / X4_FILE, noise_mode=mode, metadata=metadata)
    with pytest.raises(CheckpointError, match=re.escape(words)) as info:
        load_unet(path)
    text = str(info.value)
    assert text.startswith(str(path)) and text.count(". ") == 0 and text.endswith(".")


def test_distilled_metadata_on_weights_without_a_noise_map_is_refused(tmp_path):
    from safetensors.torch import save_file

    plain, _ = make_tiny("sinsr")
    path = tmp_path / X4_FILE
    save_file(dict(plain.model.state_dict()), str(path), metadata={"noise_mode": "concat", "cond_lq": "latent"})
    with pytest.raises(CheckpointError, match="the weights take no noise map"):
        load_unet(path)


def test_our_own_metadata_wins_over_theirs(tmp_path):
    """A file with both headers (converted by us from theirs, keys kept) is read by ours."""
    from resshift_core.checkpoints.writer import atomic_save_safetensors, checkpoint_metadata

    unet = load_unet(write_distilled_student(tmp_path / "a" / X2_FILE, noise_mode="add", cond_lq="pixel"))
    both = {**checkpoint_metadata(unet), "noise_mode": "concat", "cond_lq": "latent"}  # theirs, contradicting
    tensors = {k: v.contiguous() for k, v in unet.model.state_dict().items()}
    converted = load_unet(atomic_save_safetensors(tensors, tmp_path / "converted.safetensors", both))
    assert converted.preset_source == "metadata" and converted.preset == unet.preset


# ------------------------------------------------------------------------------------------------
# inspect and the RSD file that cannot be downloaded
# ------------------------------------------------------------------------------------------------


def test_inspect_lists_the_presets_a_v1_like_file_fits(tmp_path):
    plain, _ = make_tiny("sinsr")
    path = tmp_path / "unknown.pth"
    torch.save(plain.model.state_dict(), path)
    info = inspect_checkpoint(path)
    assert set(info["fitting_presets"]) >= V1_PRESETS and not set(info["fitting_presets"]) & NOISE_PRESETS
    assert info["preset_source"].startswith("layout")
    torch.save(make_tiny("rsd")[0].model.state_dict(), path)
    assert set(inspect_checkpoint(path)["fitting_presets"]) == NOISE_PRESETS


def test_a_missing_rsd_file_says_where_to_get_it_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RESSHIFT_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    page = "https://drive.google.com/file/d/1EQbO1Bw2HtGmGad4uk3g2wTFjdH22B2X"
    for download_to in (tmp_path / "dl", None):  # with downloads on (nothing to fetch from) and off
        with pytest.raises(CheckpointError) as info:
            resolve_checkpoint("rsd_x4", "unet", download_to=download_to)
        text = str(info.value)
        folder = download_to or tmp_path / "models"
        assert page in text and f"put it in {folder}" in text and "ema_model_2800.pth" in text
    entry = registry.find("rsd_x4")
    with pytest.raises(DownloadError) as fetched:  # the ComfyUI nodes fetch entries directly
        fetch_checkpoint(entry, tmp_path / "comfy_models")
    assert page in str(fetched.value) and str(tmp_path / "comfy_models") in str(fetched.value)
    assert not (tmp_path / "comfy_models").exists() or not any((tmp_path / "comfy_models").iterdir())

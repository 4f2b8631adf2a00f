"""Every one-step student runs by its published name from the command line and from the nodes,
in one network call, tiled for large images (issue 12). Tiny random students stand in for the
real files (which cannot be downloaded here), each written the way its own code saves it."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_torch_thread
from fake_comfy import install_file
from resshift_core.checkpoints.writer import save_model
from resshift_core.cli import main
from resshift_core.tiny import make_tiny, tiny_unet, write_distilled_student

# registry name -> (published file, tiny task, scale)
STUDENTS = {
    "sinsr_v1": ("SinSR_v1.pth", "sinsr", 4),
    "sinsr_v2": ("SinSR_v2.pth", "sinsr", 4),
    "rsd_x4": ("ema_model_2800.pth", "rsd", 4),
    "distilled_resshift_x4": ("rsd_student_final.safetensors", "distilled", 4),
    "distilled_resshift_x2": ("rsd_student_18k.safetensors", "distilled_x2", 2),
}


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The published files as their own code saves them: SinSR and RSD a plain .pth state dict
    (no metadata: the preset comes from the registry by file name), Distilled-ResShift its
    safetensors with its own header; and a tiny f4 VQGAN under the published VQGAN's name."""
    folder = tmp_path_factory.mktemp("students")
    for file, task, _ in STUDENTS.values():
        if task.startswith("distilled"):
            write_distilled_student(folder / file, seed=1)
        else:
            torch.save(tiny_unet(task, seed=1).state_dict(), folder / file)
    vae = make_tiny("realsr")[1]
    assert vae is not None
    save_model(vae, folder / "autoencoder_vq_f4.safetensors")
    return folder


def _image(path, size=(12, 10)):
    pixels = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_each_student_runs_by_name_on_the_command_line(tmp_path, models, monkeypatch, capsys, name):
    monkeypatch.setenv("RESSHIFT_MODELS_DIR", str(models))
    monkeypatch.setenv("RESSHIFT_OFFLINE", "1")
    _, _, sf = STUDENTS[name]
    src = _image(tmp_path / "in.png")
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", name, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "samples 1 by default" in err and "sampling 1 steps (trailing spacing)" in err, err
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (12 * sf, 10 * sf)
    if name not in ("rsd_x4", "distilled_resshift_x2"):
        return  # the tiled run below is the same path for every student; these two have noise maps
    # a larger image in small tiles: one noise field (and noise map), blended tiles
    big = _image(tmp_path / "big.png", size=(28, 20))
    assert (
        main(
            [
                "upscale",
                str(big),
                "-o",
                str(tmp_path / "big_out.png"),
                "--model",
                name,
                "--tile",
                "8",
                "--tile-overlap",
                "4",
                "--vae-tile",
                "8",
                "--no-progress",
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "big_out.png") as im:
        assert im.size == (28 * sf, 20 * sf)
        assert np.asarray(im).std() > 0


def test_the_loader_lists_every_student_and_each_runs_in_one_call(comfy, models):
    choices = comfy.nodes["ResShiftModelLoader"].INPUT_TYPES()["required"]["model_name"][0]
    for file, _, _ in STUDENTS.values():
        assert file in choices  # offered before it is on disk (published files are listed by name)
    for path in models.iterdir():
        install_file(comfy.models_dir, path)
    (vae,) = comfy.run("ResShiftVAELoader", vae_name="autoencoder_vq_f4.pth", dtype="fp32")
    image = torch.rand(2, 10, 12, 3)
    for file, _, sf in STUDENTS.values():
        (model,) = comfy.run("ResShiftModelLoader", model_name=file, preset="auto", dtype="fp32")
        assert model.preset.one_step, file
        comfy.progress.clear()
        (out,) = comfy.run(
            "ResShiftUpscale",
            model=model,
            image=image,
            seed=5,
            steps=0,
            tile_size=0,
            tile_overlap=0,
            vae_tile_size=0,
            color_fix="none",
            vae=vae,
        )
        assert out.shape == (2, 10 * sf, 12 * sf, 3), file
        assert comfy.progress[-1] == (3, 3), file  # encode, the one network call, decode
        # image i of the batch with seed + i equals it alone with that seed
        (alone,) = comfy.run(
            "ResShiftUpscale",
            model=model,
            image=image[1:],
            seed=6,
            steps=0,
            tile_size=0,
            tile_overlap=0,
            vae_tile_size=0,
            color_fix="none",
            vae=vae,
        )
        torch.testing.assert_close(out[1:], alone, atol=1e-5, rtol=0)


def test_a_distilled_training_pth_keeps_its_settings_and_a_named_preset_follows_the_weights(tmp_path):
    """Distilled-ResShift's raw training files hold {"ema": weights, "noise_mode": ..., "cond_lq": ...}:
    those settings are read like its safetensors header; and `--preset distilled_x4` on an add-mode
    file puts the noise map where the weights take it."""
    from resshift_core.checkpoints.loading import load_unet
    from resshift_core.request import load_pipeline

    unet = tiny_unet("distilled", seed=2, noise_channels=3, noise_injection="add")
    torch.save(
        {"ema": unet.state_dict(), "noise_mode": "add", "noise_channels": 3, "cond_lq": "pixel"},
        tmp_path / "student.pth",
    )
    with pytest.warns(UserWarning, match="choose the preset distilled_x2 for an x2 student"):
        loaded = load_unet(tmp_path / "student.pth")  # a name the registry does not know: x4 assumed
    assert loaded.preset is not None
    assert (loaded.preset.noise_map, loaded.preset.condition) == ("add", "lr_at_latent")
    vae = make_tiny("realsr")[1]
    pipe = load_pipeline(model=str(tmp_path / "student.pth"), vae=vae, preset="distilled_x4", download=False)
    assert pipe.preset.noise_map == "add"
    assert pipe.restore(torch.rand(1, 3, 8, 8), seeds=[0]).shape == (1, 3, 32, 32)

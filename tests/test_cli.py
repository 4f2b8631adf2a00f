"""The command line: upscale files and folders, inspect, convert, and its error messages."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import served_entry, serving
from resshift_core.checkpoints.loading import load_unet
from resshift_core.cli import main
from resshift_core.tiny import write_tiny_checkpoints


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return write_tiny_checkpoints(folder, "realsr")


def _write(path, array, mode=None):
    Image.fromarray(array, mode).save(path)


def test_upscale_folder_keeps_modes_and_sizes(tmp_path, tiny, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write(src / "rgb.png", (rng.random((13, 21, 3)) * 255).astype(np.uint8))
    _write(src / "sub" / "rgba.png", (rng.random((8, 6, 4)) * 255).astype(np.uint8), "RGBA")
    _write(src / "gray.jpg", (rng.random((9, 9)) * 255).astype(np.uint8), "L")
    unet, vae = tiny
    code = main(
        ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(unet), "--vae", str(vae), "--no-progress"]
    )
    assert code == 0
    rgb = Image.open(tmp_path / "out" / "rgb.png")
    assert rgb.size == (84, 52) and rgb.mode == "RGB"
    rgba = Image.open(tmp_path / "out" / "sub" / "rgba.png")
    assert rgba.size == (24, 32) and rgba.mode == "RGBA"
    gray = Image.open(tmp_path / "out" / "gray.png")
    assert gray.size == (36, 36) and gray.mode == "L"


def test_sixteen_bit_input_gives_sixteen_bit_output(tmp_path, tiny):
    from resshift_core.image_io import load_image, save_image

    save_image(tmp_path / "deep.png", torch.rand(3, 10, 12), bit_depth=16)
    unet, vae = tiny
    out = tmp_path / "deep_x4.png"
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "deep.png"),
                "-o",
                str(out),
                "--model",
                str(unet),
                "--vae",
                str(vae),
                "--no-progress",
            ]
        )
        == 0
    )
    loaded = load_image(out)
    assert loaded.bit_depth == 16 and loaded.rgb.shape == (3, 40, 48)


def test_same_seed_same_file_and_skip_existing(tmp_path, tiny):
    _write(tmp_path / "a.png", (np.random.default_rng(1).random((8, 8, 3)) * 255).astype(np.uint8))
    unet, vae = tiny
    args = ["upscale", str(tmp_path / "a.png"), "--model", str(unet), "--vae", str(vae), "--no-progress", "--seed", "3"]
    assert main([*args, "-o", str(tmp_path / "o1.png")]) == 0
    assert main([*args, "-o", str(tmp_path / "o2.png")]) == 0
    assert (tmp_path / "o1.png").read_bytes() == (tmp_path / "o2.png").read_bytes()
    before = (tmp_path / "o1.png").stat().st_mtime_ns
    assert main([*args, "-o", str(tmp_path / "o1.png"), "--skip-existing"]) == 0
    assert (tmp_path / "o1.png").stat().st_mtime_ns == before


def test_spacing_flag_chooses_the_steps_a_short_chain_keeps(tmp_path, tiny, capsys):
    _write(tmp_path / "a.png", (np.random.default_rng(2).random((8, 8, 3)) * 255).astype(np.uint8))
    unet, vae = tiny
    args = [
        "upscale",
        str(tmp_path / "a.png"),
        "--model",
        str(unet),
        "--vae",
        str(vae),
        "--no-progress",
        "--seed",
        "3",
        "--steps",
        "1",
    ]
    assert main([*args, "-o", str(tmp_path / "p.png")]) == 0
    assert "1 steps (published spacing)" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "t.png"), "--spacing", "trailing"]) == 0
    assert "1 steps (trailing spacing)" in capsys.readouterr().err
    assert (tmp_path / "p.png").read_bytes() != (tmp_path / "t.png").read_bytes()  # t = 0 vs t = T-1
    with pytest.raises(SystemExit):
        main([*args, "-o", str(tmp_path / "x.png"), "--spacing", "even"])
    # The built-in untrained model takes it too (it was silently ignored there).
    from resshift_core.request import load_pipeline

    assert load_pipeline(model="untrained-tiny", spacing="trailing").preset.spacing == "trailing"


def test_inspect_and_convert(tmp_path, tiny, capsys):
    unet, _ = tiny
    sd = load_unet(unet).model.state_dict()
    pth = tmp_path / "mine.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, pth)
    assert main(["inspect", str(pth)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["part"] == "unet" and info["preset"]["task"] == "realsr" and info["parameters"] > 0
    out = tmp_path / "mine.safetensors"
    assert main(["convert", str(pth), str(out), "--preset", "realsr_x4_s15"]) == 0
    converted = load_unet(out)
    assert (
        converted.preset is not None
        and converted.preset.name == "realsr_x4_s15"
        and converted.preset_source == "metadata"
    )
    for k, v in converted.model.state_dict().items():
        assert torch.equal(v, sd[k])


def test_inspect_list_names_the_published_files(capsys):
    assert main(["inspect", "--list"]) == 0
    out = capsys.readouterr().out
    assert "resshift_realsrx4_s4_v3" in out and "autoencoder_vq_f4" in out


def test_errors_are_sentences_not_tracebacks(tmp_path, tiny, capsys, monkeypatch):
    monkeypatch.setenv("RESSHIFT_OFFLINE", "1")  # a published name is never fetched here
    monkeypatch.setenv("RESSHIFT_MODELS_DIR", str(tmp_path / "models"))
    unet, vae = tiny
    _write(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    # the VAE where the model goes
    assert (
        main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", str(vae), "--no-progress"]) == 1
    )
    assert "not a ResShift UNet" in capsys.readouterr().err
    # a published checkpoint that is not downloaded
    assert (
        main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", "resshift_realsrx4_s4_v3"]) == 1
    )
    err = capsys.readouterr().err
    assert "not on this machine" in err and "releases/download" in err
    # a VAE for the shipped pixel-space model, which has none
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "a.png"),
                "-o",
                str(tmp_path / "o"),
                "--model",
                "resshift_tiny_realsr_x4",
                "--vae",
                str(vae),
                "--no-progress",
            ]
        )
        == 1
    )
    assert "pixel-space model: it takes no VAE" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # a missing input
    assert main(["upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o"), "--model", str(unet)]) == 1
    assert "nope.png" in capsys.readouterr().err
    # a corrupt checkpoint
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    assert main(["inspect", str(bad)]) == 1
    assert "truncated or corrupt" in capsys.readouterr().err
    # inpainting without a mask
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--task", "inpaint"]) == 1
    assert "--mask" in capsys.readouterr().err


def test_untrained_default_says_what_it_is(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RESSHIFT_MODELS_DIR", str(tmp_path / "empty"))
    _write(tmp_path / "a.png", np.zeros((5, 7, 3), np.uint8))
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "a.png"),
                "-o",
                str(tmp_path / "o.png"),
                "--model",
                "untrained-tiny",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "RANDOM weights" in capsys.readouterr().err
    assert Image.open(tmp_path / "o.png").size == (28, 20)


def test_shipped_models_run_by_name_and_experimental_ones_are_never_the_default(tmp_path, capsys, monkeypatch):
    """The small models in weights/ need no download; one below our quality bar is never chosen
    by default (the default is then the loudly labelled untrained-tiny)."""
    from resshift_core import registry

    shipped = [e for e in registry.entries() if e.shipped and e.part == "unet"]
    assert shipped and all(e.local_path is not None and e.local_path.is_file() for e in shipped)
    monkeypatch.setenv("RESSHIFT_MODELS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("RESSHIFT_OFFLINE", "1")
    rng = np.random.default_rng(3)
    _write(tmp_path / "a.png", (rng.random((10, 13, 3)) * 255).astype(np.uint8))
    for entry in shipped:
        out = tmp_path / f"{entry.name}.png"
        assert main(["upscale", str(tmp_path / "a.png"), "-o", str(out), "--model", entry.name, "--no-progress"]) == 0
        assert f"model {entry.file}" in capsys.readouterr().err
        assert Image.open(out).size == (52, 40)
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "d.png"), "--no-progress"]) == 0
    default = next((e for e in shipped if not e.experimental), None)
    err = capsys.readouterr().err
    assert (f"model {default.file}" in err) if default else ("RANDOM weights" in err)


def test_inpainting_fills_the_white_of_the_mask_and_keeps_the_rest(tmp_path, capsys):
    unet, vae = write_tiny_checkpoints(tmp_path / "models", "inpaint")
    rng = np.random.default_rng(5)
    image = (rng.random((16, 12, 3)) * 255).astype(np.uint8)
    _write(tmp_path / "in.png", image)
    hole = np.zeros((16, 12), bool)
    hole[4:12, 2:8] = True
    # an RGB mask file at half the image's size (resized bilinearly, binarised): white = fill in
    small = np.zeros((8, 6, 3), np.uint8)
    small[2:6, 1:4] = 255
    _write(tmp_path / "mask.png", small)
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "in.png"),
                "-o",
                str(tmp_path / "out.png"),
                "--model",
                str(unet),
                "--vae",
                str(vae),
                "--mask",
                str(tmp_path / "mask.png"),
                "--no-progress",
            ]
        )
        == 0
    )
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == image.shape
    np.testing.assert_array_equal(out[~hole], image[~hole])  # known pixels are the input's
    changed = np.abs(out[hole].astype(int) - image[hole].astype(int)).mean()
    assert changed > 20, changed  # the hole is the model's (random weights: far from the input)


def test_a_missing_published_checkpoint_is_downloaded_into_the_models_folder(tmp_path, capsys, monkeypatch):
    from resshift_core import registry

    unet, vae = write_tiny_checkpoints(tmp_path / "made", "bicsr")
    payload = unet.read_bytes()
    with serving(payload) as base:
        entry = served_entry("test_cli_download", f"{base}/f", payload)
        real_entries = registry.entries
        monkeypatch.setattr(registry, "entries", lambda: [*real_entries(), entry])
        models = tmp_path / "models"
        monkeypatch.setenv("RESSHIFT_MODELS_DIR", str(models))
        monkeypatch.delenv("RESSHIFT_OFFLINE", raising=False)
        _write(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
        args = ["upscale", str(tmp_path / "a.png"), "--model", entry.name, "--vae", str(vae), "--no-progress"]
        assert main([*args, "-o", str(tmp_path / "x.png"), "--no-download"]) == 1
        assert "not on this machine" in capsys.readouterr().err and not models.exists()
        assert main([*args, "-o", str(tmp_path / "o.png")]) == 0
        assert (models / entry.file).read_bytes() == payload
        assert Image.open(tmp_path / "o.png").size == (16, 16)

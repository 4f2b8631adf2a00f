"""`upscale` never loses or silently changes what a user has: outputs onto inputs, two inputs
onto one output, half-written earlier outputs, and format changes (issue 13)."""

import numpy as np
import pytest
from PIL import Image

from resshift_core.cli import main
from resshift_core.tiny import write_tiny_checkpoints


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    unet, vae = write_tiny_checkpoints(tmp_path_factory.mktemp("models"), "realsr")
    return ["--model", str(unet), "--vae", str(vae), "--no-progress", "--seed", "1"]


def _png(path, size=(6, 5), mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}[mode]
    Image.fromarray((rng.random((size[1], size[0], channels)) * 255).astype(np.uint8), mode).save(path)
    return path


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(err: str, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert all(w in errors[0] for w in words), errors[0]


def test_outputs_onto_inputs_are_refused_and_nothing_changes(tmp_path, model, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    _png(photos / "a.png")
    _png(photos / "b.jpg")
    before = _snapshot(photos)
    assert main(["upscale", str(photos), "-o", str(photos), *model]) == 1
    _one_error_line(capsys.readouterr().err, "input folder itself")
    assert main(["upscale", str(photos / "a.png"), "-o", str(photos / "a.png"), *model]) == 1
    _one_error_line(capsys.readouterr().err, "is an input")
    assert main(["upscale", str(photos / "a.png"), "-o", "", *model]) == 1
    _one_error_line(capsys.readouterr().err, "-o is empty")
    # the same folder spelt another way, and an output that is another input
    assert main(["upscale", str(photos), "-o", str(photos / "." / ""), *model]) == 1
    _one_error_line(capsys.readouterr().err, "input folder itself")
    assert main(["upscale", str(photos / "b.jpg"), str(photos / "a.png"), "-o", str(photos), *model]) == 1
    assert _snapshot(photos) == before


def test_two_inputs_onto_one_output_are_refused_before_any_work(tmp_path, model, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    _png(folder / "x.png")
    Image.open(folder / "x.png").convert("RGB").save(folder / "x.jpg")
    assert main(["upscale", str(folder), "-o", str(tmp_path / "out"), *model]) == 1
    _one_error_line(capsys.readouterr().err, "x.jpg", "x.png", "both")
    assert not (tmp_path / "out").exists()
    # with --format same they keep their own endings and both are written
    assert main(["upscale", str(folder), "-o", str(tmp_path / "out"), "--format", "same", *model]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.jpg", "x.png"]
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    _png(tmp_path / "d1" / "a.png")
    _png(tmp_path / "d2" / "a.png", seed=1)
    assert (
        main(
            [
                "upscale",
                str(tmp_path / "d1" / "a.png"),
                str(tmp_path / "d2" / "a.png"),
                "-o",
                str(tmp_path / "out2"),
                *model,
            ]
        )
        == 1
    )
    _one_error_line(capsys.readouterr().err, "both")
    assert not (tmp_path / "out2").exists()


def test_skip_existing_redoes_empty_cut_off_and_wrong_size_outputs(tmp_path, model):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c", "d"):
        _png(folder / f"{name}.png")
    out = tmp_path / "out"
    assert main(["upscale", str(folder), "-o", str(out), *model]) == 0
    good = (out / "a.png").read_bytes()
    (out / "b.png").write_bytes(b"")  # 0 bytes
    (out / "c.png").write_bytes(good[: len(good) // 2])  # cut off
    _png(out / "d.png", size=(7, 7))  # a whole image, but not 4x the input
    stamp = (out / "a.png").stat().st_mtime_ns
    assert main(["upscale", str(folder), "-o", str(out), "--skip-existing", *model]) == 0
    assert (out / "a.png").stat().st_mtime_ns == stamp  # kept
    for name in ("b", "c", "d"):
        with Image.open(out / f"{name}.png") as im:
            assert im.size == (24, 20), name  # redone
    assert (out / "c.png").read_bytes() == good  # same input and seed: the same result


def test_format_changes_are_said_and_file_names_keep_their_endings(tmp_path, model, capsys):
    rgba = _png(tmp_path / "logo.png", mode="RGBA")
    assert main(["upscale", str(rgba), "-o", str(tmp_path / "photo.jpg"), *model]) == 0
    err = capsys.readouterr().err
    assert "transparency" in err and "photo.png" in err
    assert (tmp_path / "photo.png").is_file() and not (tmp_path / "photo.jpg").exists()
    # 16 bits to JPEG: said
    deep = tmp_path / "deep.png"
    from resshift_core.image_io import save_image

    save_image(deep, np.random.default_rng(0).random((3, 5, 6)).astype(np.float32), bit_depth=16)
    assert main(["upscale", str(deep), "-o", str(tmp_path / "o"), "--format", "jpg", *model]) == 0
    assert "16 bits per sample" in capsys.readouterr().err
    # -o NAME.tif for one input is a TIFF file, not a folder
    assert main(["upscale", str(deep), "-o", str(tmp_path / "out.tif"), *model]) == 0
    assert (tmp_path / "out.tif").is_file()
    with Image.open(tmp_path / "out.tif") as im:
        assert im.format == "TIFF" and im.size == (24, 20)
    assert main(["upscale", str(deep), "-o", str(tmp_path / "out.xyz"), *model]) == 1
    _one_error_line(capsys.readouterr().err, "no image format")


def test_an_animated_input_says_only_its_first_frame_is_restored(tmp_path, model, capsys):
    frames = [Image.new("RGB", (6, 5), c) for c in ("red", "blue", "green")]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert main(["upscale", str(tmp_path / "anim.webp"), "-o", str(tmp_path / "o"), *model]) == 0
    assert "animated (3 frames)" in capsys.readouterr().err


def test_an_output_folder_inside_the_input_folder_is_never_read_back(tmp_path, model):
    photos = tmp_path / "photos"
    photos.mkdir()
    _png(photos / "a.png")
    out = photos / "upscaled"
    assert main(["upscale", str(photos), "-o", str(out), *model]) == 0
    assert main(["upscale", str(photos), "-o", str(out), *model]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png"]


@pytest.mark.parametrize(
    ("option", "words"),
    [
        (["--steps", "-1"], "steps must be 1 to 4"),
        (["--steps", "1000"], "steps must be 1 to 4"),
        (["--seed", str(2**70)], "seed must be a whole number from 0 to 2**64 - 1"),
        (["--seed", "-3"], "seed must be a whole number"),
        (["--tile", "0"], "tile must be a whole number of input pixels, at least 1"),
        (["--tile", "-5"], "at least 1"),
        (["--tile-overlap", "-3"], "tile overlap must be a whole number of input pixels, at least 0"),
        (["--vae-tile", "0"], "VAE tile must be"),
        (["--device", "foo"], "unknown device 'foo'"),
        (["--device", "meta"], "not supported"),
        (["--device", "mps"], "MPS is not available"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(tmp_path, model, capsys, option, words):
    _png(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), *model, *option]) == 1
    _one_error_line(capsys.readouterr().err, words)
    assert not (tmp_path / "out").exists()


def test_an_image_too_large_for_the_memory_is_refused_before_any_work(tmp_path, model, capsys, monkeypatch):
    """The refusal says how much more memory the output needs (the measured model in
    memory_estimate, with the loaded networks' weights and largest call, less what the process
    holds already)."""
    from resshift_core import cli_upscale
    from resshift_core.memory_estimate import LATENT_STREAMED, network_bytes
    from resshift_core.request import load_pipeline

    _png(tmp_path / "a.png", size=(8, 6))
    pipe = load_pipeline(model=model[1], vae=model[3], device="cpu", dtype="auto", download=False)  # as upscale
    networks = network_bytes(pipe.weight_bytes, pipe.largest_call_bytes(pipe.tiling()), on_cpu=True)
    assert networks > pipe.weight_bytes > 0
    held = 300 << 20
    need = LATENT_STREAMED.peak_bytes(8, 6, 4, networks) - held
    monkeypatch.setattr(cli_upscale, "resident_memory_bytes", lambda: held)
    monkeypatch.setattr(cli_upscale, "available_memory_bytes", lambda: need - 1)
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), *model]) == 1
    err = capsys.readouterr().err
    assert "is 8x6: restoring it x4 needs about" in err and "GiB more memory" in err and "GiB is available" in err
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(cli_upscale, "available_memory_bytes", lambda: need)
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), *model]) == 0

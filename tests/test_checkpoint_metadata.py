"""Damaged preset metadata and files without metadata (issue 13): one sentence, or what the
weights say, never a traceback or a wrong guess."""

import json
import warnings

import pytest
import torch
from safetensors.torch import save_file

from resshift_core import registry
from resshift_core.checkpoints.loading import load_unet
from resshift_core.cli import main
from resshift_core.errors import CheckpointError
from resshift_core.tiny import make_tiny


@pytest.fixture(scope="module")
def weights():
    unet, _ = make_tiny("realsr")
    return {k: v.contiguous() for k, v in unet.model.state_dict().items()}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{bad json", "not JSON"),
        ("null", "JSON object"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"task": "magic"}), "unknown task"),
        (json.dumps({"steps": "four"}), "steps must be a whole number"),
        (json.dumps({"steps": 10**9, "sf": 4096}), "from 2 to 1000"),
        (json.dumps({"sf": 4096}), "from 1 to 16"),
        (json.dumps({"kappa": None}), "kappa must be a number"),
    ],
)
def test_damaged_preset_metadata_is_one_sentence(tmp_path, weights, capsys, raw, words):
    path = tmp_path / "bad.safetensors"
    save_file(
        weights, str(path), metadata={"format": "resshift-core/1", "resshift.part": "unet", "resshift.preset": raw}
    )
    with pytest.raises(CheckpointError, match=words) as info:
        load_unet(path)
    assert "damaged" in str(info.value) and "--preset" in str(info.value)
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    # naming a preset gets past it
    named = load_unet(path, preset="realsr_x4_s4").preset
    assert named is not None and named.name == "realsr_x4_s4"


@pytest.mark.parametrize("wrap", [lambda sd: sd, lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}])
def test_our_pixel_space_model_without_metadata_is_still_pixel_space(tmp_path, wrap):
    """The shipped model renamed to .pth (or saved from DDP) has no metadata: its weights store
    the pixel folding, which only our pixel-space models use, so no VQGAN is asked for."""
    shipped = registry.find("resshift_tiny_realsr_x4")
    assert shipped is not None and shipped.local_path is not None
    sd = load_unet(shipped.local_path).model.state_dict()
    torch.save(wrap(sd), tmp_path / "renamed.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no preset recorded": the layout decides, and says so
        loaded = load_unet(tmp_path / "renamed.pth")
    assert loaded.preset is not None and not loaded.preset.latent
    assert loaded.preset.name == "tiny_realsr_x4" and loaded.preset_source.startswith("layout")

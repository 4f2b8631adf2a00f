"""Reading checkpoint files: every storage style the published code accepts, and bad files."""

import collections
import os

import pytest
import torch
from safetensors.torch import save_file

from resshift_core.checkpoints.io import canonical_keys, read_checkpoint, read_safetensors_metadata, sniff_format
from resshift_core.errors import CheckpointError


def _weights():
    return {"a.weight": torch.randn(4, 3), "b.bias": torch.arange(5.0)}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"state_dict": sd},
        lambda sd: {"module." + k: v for k, v in sd.items()},
        lambda sd: {"_orig_mod." + k: v for k, v in sd.items()},
        lambda sd: {"state_dict": {"module._orig_mod." + k: v for k, v in sd.items()}},
        lambda sd: {"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}},
        collections.OrderedDict,
    ],
    ids=["plain", "wrapped", "module", "orig_mod", "wrapped_both", "params_ema", "ordered"],
)
def test_storage_styles_give_the_same_weights(tmp_path, wrap):
    sd = _weights()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(sd), path)
    loaded, meta = read_checkpoint(path)
    assert set(loaded) == set(sd) and meta == {}
    for k in sd:
        torch.testing.assert_close(loaded[k], sd[k])


def test_legacy_torch_format_and_non_tensor_entries(tmp_path):
    sd = dict(_weights(), step=torch.tensor(3))
    path = tmp_path / "old.pth"
    torch.save({"state_dict": sd, "epoch": 7}, path, _use_new_zipfile_serialization=False)
    assert sniff_format(path) == "torch-legacy"
    assert set(read_checkpoint(path)[0]) == set(sd)


def test_safetensors_with_metadata_and_renamed_file(tmp_path):
    path = tmp_path / "model.pth"  # misnamed on purpose: the content decides
    save_file(_weights(), str(path), metadata={"format": "x", "resshift.part": "unet"})
    sd, meta = read_checkpoint(path)
    assert set(sd) == set(_weights()) and meta["resshift.part"] == "unet"
    assert read_safetensors_metadata(path)["format"] == "x"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_is_refused_not_run(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _weights(), "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="Python objects other than tensors"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "kind", ["missing", "empty", "folder", "html", "truncated_zip", "truncated_safetensors", "no_tensors"]
)
def test_bad_files_give_clear_errors(tmp_path, kind):
    path = tmp_path / "bad.pth"
    if kind == "empty":
        path.write_bytes(b"")
        pattern = "empty"
    elif kind == "folder":
        path.mkdir()
        pattern = "folder"
    elif kind == "html":
        path.write_bytes(b"<!DOCTYPE html><html>Not Found</html>")
        pattern = "neither a PyTorch checkpoint nor a safetensors"
    elif kind == "truncated_zip":
        torch.save(_weights(), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        pattern = "truncated or corrupt"
    elif kind == "truncated_safetensors":
        path = tmp_path / "bad.safetensors"
        save_file(_weights(), str(path))
        data = path.read_bytes()
        path.write_bytes(data[:-10])
        pattern = "truncated or corrupt"
    elif kind == "no_tensors":
        torch.save({"epoch": 3, "lr": 0.1}, path)
        pattern = "no tensors"
    else:
        pattern = "not found"
    with pytest.raises(CheckpointError, match=pattern):
        read_checkpoint(path)


def test_canonical_keys_strips_any_prefix_combination():
    keys = canonical_keys({"module._orig_mod.x": 1, "_orig_mod.module.y": 2, "z": 3})
    assert list(keys) == ["x", "y", "z"]


def test_layout_mismatch_names_the_keys():
    from resshift_core.checkpoints.layout import require_layout
    from resshift_core.errors import ArchitectureError

    expected = {"a.weight": (4, 3), "b.weight": (2,), "c.bias": (1,)}
    require_layout(expected, {k: torch.zeros(s) for k, s in expected.items()}, "x")  # a fit: no error
    bad = {"a.weight": torch.zeros(4, 4), "b.weight": torch.zeros(2), "d": torch.zeros(1)}
    with pytest.raises(ArchitectureError) as info:
        require_layout(expected, bad, "the test network")
    text = str(info.value)
    assert "do not fit the test network" in text and "1 missing (e.g. c.bias)" in text
    assert "1 unexpected (e.g. d)" in text and "a.weight (4, 4) (expected (4, 3))" in text


def test_saved_models_get_the_umask_permissions_like_any_file(tmp_path):
    import os
    import stat

    from resshift_core.checkpoints.writer import save_model
    from resshift_core.tiny import make_tiny

    old = os.umask(0o022)
    try:
        path = save_model(make_tiny("pixel")[0], tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind

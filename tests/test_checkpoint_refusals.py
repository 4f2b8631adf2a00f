"""Unusual files and tensors get one sentence, never a traceback or a silent cast (issue 13)."""

import pytest
import torch
from safetensors.torch import save_file

from resshift_core.checkpoints.io import read_checkpoint
from resshift_core.checkpoints.loading import load_unet
from resshift_core.checkpoints.writer import save_model
from resshift_core.cli import main
from resshift_core.errors import CheckpointError
from resshift_core.tiny import make_tiny


@pytest.fixture(scope="module")
def weights():
    unet, _ = make_tiny("realsr")
    return unet, {k: v.contiguous() for k, v in unet.model.state_dict().items()}


def test_a_pytorch_file_named_safetensors_loads(tmp_path, weights):
    _, sd = weights
    torch.save(sd, tmp_path / "renamed.safetensors")
    loaded = load_unet(tmp_path / "renamed.safetensors")
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in sd.items())


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda t: t.to(torch.float8_e4m3fn), "stored as float8_e4m3fn"),
        (lambda t: t.to(torch.int8), "stored as int8"),
        (lambda t: t.to(torch.complex64), "stored as complex64"),
        (lambda t: t.to_sparse(), "is sparse"),
    ],
    ids=["float8", "int8", "complex", "sparse"],
)
def test_tensors_no_resshift_network_stores_are_refused(tmp_path, weights, change, words):
    _, sd = weights
    key = "time_embed.0.weight"
    odd = {**sd, key: change(sd[key])}
    torch.save(odd, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=words) as info:
        read_checkpoint(tmp_path / "odd.pth")
    assert key in str(info.value)
    assert "convert" in str(info.value) or "dense" in str(info.value)
    if not odd[key].is_sparse:
        save_file({**sd, key: odd[key].contiguous()}, str(tmp_path / "odd.safetensors"))
        with pytest.raises(CheckpointError, match=words):
            read_checkpoint(tmp_path / "odd.safetensors")


def test_a_meta_tensor_is_refused(weights):
    from resshift_core.checkpoints.io import check_tensor_kinds

    _, sd = weights
    with pytest.raises(CheckpointError, match="meta tensor"):
        check_tensor_kinds({**sd, "out.2.weight": torch.empty(3, device="meta")}, "f.pth")


def test_convert_onto_a_folder_says_so_and_writes_nothing(tmp_path, weights, capsys):
    unet, _ = weights
    source = save_model(unet, tmp_path / "tiny.safetensors")
    (tmp_path / "taken.safetensors").mkdir()
    assert main(["convert", str(source), str(tmp_path / "taken.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "a folder of that name exists" in err and "Traceback" not in err
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_an_unreadable_checkpoint_is_one_line(tmp_path, weights, capsys, monkeypatch):
    """A file that exists but cannot be opened (permissions; faked, since root may read anything)."""
    import builtins

    from resshift_core.checkpoints import io

    unet, _ = weights
    source = save_model(unet, tmp_path / "tiny.safetensors")
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if str(file) == str(source):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", refusing_open, raising=False)  # the module's own name lookup
    assert main(["inspect", str(source)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot read") and "Permission denied" in err, err
    assert "permissions" in err

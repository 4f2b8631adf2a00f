"""The one table of devices and dtypes, and what `--dtype auto` picks (issue 14, first part)."""

import pytest
import torch

from resshift_core import devices
from resshift_core.errors import InputError


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ("fpu sse2 avx2 avx512f avx512bw", torch.float32),  # bf16 would be emulated: ~10x slower
        ("fpu avx2 avx512f avx512_bf16", torch.bfloat16),
        ("fpu avx2 amx_bf16 amx_tile", torch.bfloat16),
    ],
)
def test_auto_picks_bf16_only_on_a_cpu_that_computes_it_natively(tmp_path, monkeypatch, flags, want):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    monkeypatch.setattr(devices, "CPUINFO", cpuinfo)
    dtype, why = devices.resolve_dtype("auto", torch.device("cpu"))
    assert dtype == want and why.startswith("auto: ")
    monkeypatch.setattr(devices, "CPUINFO", tmp_path / "missing")
    assert devices.auto_dtype(torch.device("cpu"))[0] == torch.float32  # unknown: never bf16


def test_named_dtypes_and_devices():
    assert devices.resolve_dtype("fp16", torch.device("cpu")) == (torch.float16, "asked for")
    with pytest.raises(InputError, match="unknown dtype 'fp8'"):
        devices.dtype_from_name("fp8")
    assert devices.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="not supported"):
        devices.pick_device("meta")


def test_the_command_line_says_what_auto_picked(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from resshift_core.cli import main

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    picked = "bf16" if devices.cpu_has_native_bf16() else "fp32"
    assert f"cpu, {picked} (auto: " in err

"""--compile (resshift_core/compiled.py): one graph per network whatever the image size, outputs
as eager, and one clear line where torch.compile cannot work.

The recompilation tests run Dynamo with its "eager" backend: the same capture, graphs and
guards as Inductor (guards decide what recompiles), without minutes of C++ code generation on
a small CPU. The Inductor fidelity test is opt-in (RESSHIFT_INDUCTOR_TESTS=1): compiling even the
tiny VQGAN takes about a minute per dtype on two cores.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch._dynamo.utils import counters

from resshift_core.cli import main
from resshift_core.compiled import CompileConfig, CompileUnavailableError, check_compile_support, compile_module
from resshift_core.image_io import save_image
from resshift_core.request import load_pipeline
from resshift_core.tiling import TilingConfig
from resshift_core.tiny import make_tiny

DYNAMO_ONLY = CompileConfig(backend="eager")


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def psnr(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> float:
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return 10 * math.log10(peak**2 / max(mse, 1e-20))


def graphs() -> int:
    return int(counters["stats"]["unique_graphs"])


def test_a_second_image_size_and_every_tile_reuse_the_graphs():
    pipe = load_pipeline(model="untrained-tiny", compile=DYNAMO_ONLY)
    eager = load_pipeline(model="untrained-tiny")
    gen = torch.Generator().manual_seed(0)
    pipe.restore(torch.rand(1, 3, 64, 72, generator=gen), seeds=[1], tiling=None)
    assert graphs() == 3  # UNet, encoder, decoder: one whole graph each (no graph breaks)
    assert not counters["graph_break"]
    # Another size whole, then a third tiled (tiles of yet another size, blended every step):
    # nothing may compile again. (Sizes on one side of torch's small-convolution threshold,
    # 20480 input elements per image, which picks another CPU kernel: see compiled.py.)
    second = torch.rand(1, 3, 88, 72, generator=gen)
    third = torch.rand(1, 3, 120, 72, generator=gen)
    tiling = TilingConfig(tile=72, overlap=8, vae_tile=32, vae_overlap=4)
    with torch._dynamo.config.patch(error_on_recompile=True):
        whole = pipe.restore(second, seeds=[2], tiling=None)
        tiled = pipe.restore(third, seeds=[3], tiling=tiling)
    assert graphs() == 3
    assert psnr(whole, eager.restore(second, seeds=[2], tiling=None)) >= 50
    assert psnr(tiled, eager.restore(third, seeds=[3], tiling=tiling)) >= 50


def test_compile_is_off_by_default():
    pipe = load_pipeline(model="untrained-tiny")
    pipe.restore(torch.rand(1, 3, 16, 16), seeds=[0])
    assert graphs() == 0


def _image(tmp_path):
    src = tmp_path / "in.png"
    save_image(src, torch.rand(3, 16, 16))
    return src


def no_cpp_compiler():
    """Inductor's compiler search finds nothing (its config, patched: monkeypatch cannot restore it)."""
    import torch._inductor.config as inductor_config

    return inductor_config.patch({"cpp.cxx": ("/nonexistent/c++",)})


def test_no_cpp_compiler_is_one_line_before_any_image_work(tmp_path, capsys):
    out = tmp_path / "out"
    with no_cpp_compiler():
        rc = main(["upscale", str(_image(tmp_path)), "-o", str(out), "--model", "untrained-tiny", "--compile"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err == [
        (
            "error: --compile on the CPU needs a C++ compiler and none was found (set CXX, or install g++ or "
            "clang++), or leave --compile out"
        )
    ]
    assert not out.exists() or not any(out.iterdir())


def test_unsupported_python_is_one_line(monkeypatch):
    import torch._dynamo.eval_frame as eval_frame

    def unsupported():
        raise RuntimeError("Python 3.99+ not yet supported for torch.compile\nmore detail")

    monkeypatch.setattr(eval_frame, "check_if_dynamo_supported", unsupported)
    with pytest.raises(CompileUnavailableError) as info:
        check_compile_support("cpu")
    assert str(info.value) == (
        "--compile: torch.compile does not work here (Python 3.99+ not yet supported for torch.compile); "
        "or leave --compile out"
    )


@pytest.mark.skipif(not os.environ.get("RESSHIFT_INDUCTOR_TESTS"), reason="set RESSHIFT_INDUCTOR_TESTS=1 (minutes)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inductor_matches_eager(dtype):
    """The tiny VQGAN's encoder and decoder through Inductor against the same in eager mode."""
    _, vae = make_tiny("realsr")
    assert vae is not None
    net = vae.model.to(dtype=dtype)
    net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    # Both sizes above torch's small-convolution threshold (3 x 96 x 80 > 20480): one graph each.
    x = torch.rand(1, 3, 112, 96, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        eager = net.decode(net.encode(x), quantize=False)
        compile_module(net.encoder)
        compile_module(net.decoder)
        compiled = net.decode(net.encode(x), quantize=False)
        with torch._dynamo.config.patch(error_on_recompile=True):
            other_size = net.decode(net.encode(x[..., :96, :80]), quantize=False)
    # fp32 measured 119 dB. bf16 measured 40 dB: Inductor keeps fused intermediates in float32
    # where eager rounds to bf16 after every op, so the two bf16 results differ by bf16 rounding.
    assert psnr(compiled, eager, peak=2.0) >= (50 if dtype == torch.float32 else 35)
    assert other_size.shape[-2:] == (96, 80)
    assert graphs() == 2


# -- the loader nodes' `compile` option (fake ComfyUI host) ----------------------------------------


def test_loader_nodes_compile_only_when_asked_and_refuse_in_one_line(comfy, tiny_cache):
    from fake_comfy import install_tiny

    install_tiny(comfy.models_dir, tiny_cache)
    (plain,) = comfy.run("ResShiftModelLoader", model_name="resshift_realsrx4_s4_v3.pth", preset="auto", dtype="auto")
    assert "forward" not in vars(plain.loaded.model)  # off by default (and for workflows saved without it)
    (model,) = comfy.run(
        "ResShiftModelLoader", model_name="resshift_realsrx4_s4_v3.pth", preset="auto", dtype="auto", compile=True
    )
    (vae,) = comfy.run("ResShiftVAELoader", vae_name="autoencoder_vq_f4.pth", dtype="auto", compile=True)
    assert "forward" in vars(model.loaded.model)  # compiled in place; compiles on first use
    assert all("forward" in vars(part) for part in (vae.loaded.model.encoder, vae.loaded.model.decoder))
    with no_cpp_compiler(), pytest.raises(CompileUnavailableError, match=r"needs a C\+\+ compiler"):
        comfy.run("ResShiftVAELoader", vae_name="autoencoder_vq_f4.pth", dtype="auto", compile=True)


def test_a_deep_copy_of_a_compiled_network_runs_its_own_weights():
    """copy.deepcopy of a compiled module (what a host that clones models does) must bind the
    copy's forward to the copy: it ran the original's weights before."""
    import copy

    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    compile_module(net, DYNAMO_ONLY)
    twin = copy.deepcopy(net)
    assert twin.bias is not None
    with torch.no_grad():
        twin.weight.zero_()
        twin.bias.fill_(0.5)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(twin(x), torch.full_like(x, 0.5))
    assert torch.allclose(net(x), torch.nn.functional.conv2d(x, net.weight, net.bias, padding=1))
    assert graphs() >= 1  # both went through Dynamo

"""Opt-in `torch.compile` of a pipeline's networks (`--compile`): the UNet and the VQGAN's
encoder and decoder, each compiled once, in place, and reused for every tile, step and image.

One graph per network for every image size: the networks are compiled with dynamic shapes
(symbolic height, width and batch) and without "duck shaping", which would otherwise give
equal sides one symbol, so that a square first image would specialise the graph to square
inputs and the first non-square one would compile again. Padding every input up to fixed
tile shapes instead (dynamic=False) was rejected: the GroupNorms (and the VQGAN's global
mid-block attention) see the padding, so padded results are not the eager ones.

What still compiles another graph (a bounded number, never one per image): a batch of 1
against a larger one (torch specialises sizes 0 and 1); a convolution whose input has at most
20480 elements per image against a larger one (torch's CPU convolution picks another kernel
for small inputs, and the graph keeps that choice: with the published networks, latents
under about 58x58 pixels; every default 256-pixel CPU tile is above it); a feature map one
Swin window tall against a taller one. A different device or dtype is a different graph too.

torch.compile needs a working backend: Inductor wants a C++ compiler on the CPU and Triton on
a GPU. `check_compile_support` says in one line what is missing, before any image is read.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ResShiftError


class CompileUnavailableError(ResShiftError):
    """torch.compile cannot run here (no C++ compiler, no Triton, an unsupported Python)."""


@dataclass(frozen=True)
class CompileConfig:
    """How the networks are compiled. `backend="eager"` runs Dynamo's capture and guards only
    (no code generation): what the recompilation tests use to stay fast."""

    backend: str = "inductor"
    dynamic: bool = True
    mode: str | None = None  # torch.compile's mode (None: its default)


DEFAULT = CompileConfig()


def check_compile_support(device: torch.device | str, config: CompileConfig = DEFAULT) -> None:
    """Raise CompileUnavailableError, one line naming what is missing and the fix, unless
    torch.compile with `config.backend` can run on `device`."""
    fix = "or leave --compile out"
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported

        check_if_dynamo_supported()
    except Exception as exc:  # torch words the reason (e.g. the Python version)
        raise CompileUnavailableError(
            f"--compile: torch.compile does not work here ({_first_line(exc)}); {fix}"
        ) from None
    if config.backend != "inductor":
        return
    kind = torch.device(device).type
    if kind == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()  # Inductor's own search (runs `<compiler> --version`)
        except Exception:
            raise CompileUnavailableError(
                "--compile on the CPU needs a C++ compiler and none was found (set CXX, or install g++ "
                f"or clang++), {fix}"
            ) from None
    elif kind in ("cuda", "xpu"):
        from torch.utils._triton import has_triton

        if not has_triton():
            raise CompileUnavailableError(f"--compile on {kind} needs Triton (pip install triton), {fix}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def compile_module(module: nn.Module, config: CompileConfig = DEFAULT) -> None:
    """Compile `module.forward` in place (its parameters, state dict and callers stay as they are).

    The class's forward is compiled as a plain function and bound to the module, so a deep copy
    of the module binds the copy (copy.deepcopy rebinds methods): a forward that closed over the
    original would run the original's weights in the copy. Each copy guards and compiles on its own."""
    from torch.fx.experimental import _config as fx_config

    compiled = torch.compile(type(module).forward, backend=config.backend, dynamic=config.dynamic, mode=config.mode)

    @functools.wraps(type(module).forward)
    def forward(self, *args, **kwargs):
        # Shapes are traced when a new graph is needed, inside this call: that is when duck
        # shaping (one symbol for equal sizes) must be off.
        with fx_config.patch(use_duck_shape=False):  # type: ignore[attr-defined]  # made by install_config_module
            return compiled(self, *args, **kwargs)

    module.forward = types.MethodType(forward, module)  # an instance attribute: nn.Module.__call__ finds it first


def compiled_parts(net: nn.Module) -> list[nn.Module]:
    """What of a network is compiled: a VQGAN's encoder and decoder (its 1x1 quant convs and
    codebook lookup stay eager, they are cheap), any other network whole."""
    from .models.vqgan import VQGAN

    return [net.encoder, net.decoder] if isinstance(net, VQGAN) else [net]


def compile_network(net: nn.Module, device: torch.device | str, config: CompileConfig = DEFAULT) -> None:
    """Check that compiling works on `device` (where the network will compute), then compile
    the network in place. Compilation itself happens on first use: the first image pays it."""
    check_compile_support(device, config)
    for part in compiled_parts(net):
        compile_module(part, config)


def compile_pipeline(pipe, config: CompileConfig = DEFAULT) -> None:
    """A ResShiftPipeline's UNet and (latent models) VQGAN, compiled in place."""
    compile_network(pipe.unet_net, pipe.device, config)
    if not pipe.pixel_space:
        compile_network(pipe.vae_net, pipe.device, config)


__all__ = [
    "DEFAULT",
    "CompileConfig",
    "CompileUnavailableError",
    "check_compile_support",
    "compile_network",
    "compile_pipeline",
]

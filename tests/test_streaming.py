"""Large outputs as row bands: every banded step gives exactly what the whole-image step gives.

The banded path is what keeps a large image's memory bounded (row_bands, row_noise,
streamed_chain, tiling.blend_rows, image_io.png_stream); these tests pin it to the whole-image
computation bit for bit, so the memory saving can never change a pixel.
"""

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resshift_core import row_noise
from resshift_core.colorfix import WAVELET_REACH, wavelet_color_fix
from resshift_core.errors import ImageError
from resshift_core.image_io import load_image, save_image, save_image_bands
from resshift_core.request import load_pipeline
from resshift_core.row_bands import bicubic_rows, gather, windowed
from resshift_core.row_noise import NoiseRows
from resshift_core.sampler import SeededNoise, StepInfo
from resshift_core.tiling import TilePlan, TilingConfig, blend_rows


def split_rows(image: torch.Tensor, rng: random.Random, largest: int = 9):
    first, height = 0, image.shape[-2]
    while first < height:
        stop = min(height, first + rng.randint(1, largest))
        yield first, image[..., first:stop, :]
        first = stop


@pytest.mark.parametrize("shape", [(3, 37, 41), (3, 64, 64), (1, 5, 3), (3, 100, 33), (4, 17, 19), (3, 2, 7)])
def test_noise_rows_are_the_whole_draw(shape, monkeypatch):
    monkeypatch.setattr(row_noise, "SKIP_CHUNK", 48)  # many small skips, as a huge field has
    whole = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    field = NoiseRows(generator, *shape)
    rng = random.Random(shape[1])
    first = released = 0
    while first < shape[1]:
        stop = min(shape[1], first + rng.randint(1, 9))
        lo = max(released, first - rng.randint(0, 3))  # overlapping requests, as tiles make
        assert torch.equal(field.rows(lo, stop), whole[:, lo:stop])
        field.release(first)
        released, first = first, stop
    if shape[1] * shape[2] >= 32:  # (smaller fields are drawn whole and can be read anywhere)
        with pytest.raises(ValueError, match="top to bottom"):
            field.rows(0, 1)
    # the caller's generator is copied, not advanced
    assert torch.equal(torch.randn(*shape, generator=generator), whole)


def test_blend_rows_is_the_whole_blend_bit_for_bit():
    plan = TilePlan(70, 50, 24, 7)
    outputs = {t: torch.randn(2, 3, t.h * 2, t.w * 2) for t in plan.tiles}

    def run(tiles):
        return torch.cat([outputs[t] for t in tiles])

    out = torch.zeros(2, 3, 140, 100)
    total = torch.zeros(1, 1, 140, 100)
    for i, tile in enumerate(plan.tiles):  # what a whole-image blend does
        ys, xs = tile.slices(2)
        out[:, :, ys, xs] += outputs[tile] * plan.weight(i, 2)
        total[:, :, ys, xs] += plan.weight(i, 2)
    bands = list(blend_rows(run, plan, batch_size=2, out_channels=3, out_scale=2, images=2))
    assert len(bands) == len({t.y0 for t in plan.tiles})
    assert [first for first, _ in bands] == sorted({t.y0 * 2 for t in plan.tiles})
    assert torch.equal(gather(bands), out / total)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_bicubic_rows_are_rows_of_the_whole_upsampling(scale):
    image = torch.rand(1, 3, 23, 17)
    whole = F.interpolate(image * 2 - 1, scale_factor=scale, mode="bicubic") if scale > 1 else image * 2 - 1
    for first, stop in [(0, 5), (7, 30), (13, 14), (whole.shape[-2] - 9, whole.shape[-2])]:
        got = bicubic_rows(image, scale, first, stop, values=lambda x: x * 2 - 1)
        assert torch.equal(got, whole[..., first:stop, :])


def test_windowed_wavelet_fix_is_the_whole_fix():
    output, reference = torch.rand(1, 3, 150, 40), torch.rand(1, 3, 150, 40)
    whole = wavelet_color_fix(output, reference)
    both = torch.cat([output, reference], dim=1)

    def fix(window, first):
        return wavelet_color_fix(window[:, :3], window[:, 3:])

    bands = list(windowed(split_rows(both, random.Random(1), 40), 150, WAVELET_REACH, fix))
    assert len(bands) > 1
    assert torch.equal(gather(bands), whole)
    # with too little reach the band edges would show: the test can tell
    short = gather(windowed(split_rows(both, random.Random(1), 40), 150, 4, fix))
    assert not torch.equal(short, whole)


@pytest.fixture(scope="module")
def shipped():
    return load_pipeline(dtype="fp32", download=False)  # the default model: one-step, pixel space


def whole_path_noise(seed: int):
    """The same noise as SeededNoise, but not a SeededNoise: the pipeline then runs the
    whole-image tiled chain instead of the streamed one."""
    seeded = SeededNoise([seed])

    def draw(index: int, like: torch.Tensor) -> torch.Tensor:
        return seeded(index, like)

    return draw


@pytest.mark.parametrize("color_fix", ["none", "wavelet"])
def test_streamed_one_step_chain_is_the_whole_tiled_chain(shipped, color_fix):
    torch.manual_seed(0)
    image = torch.rand(1, 3, 150, 40)  # 600 x 160 out: three rows of 256-pixel UNet tiles
    tiling = TilingConfig(tile=256, overlap=16)
    calls: list[StepInfo] = []
    bands = list(shipped.restore_bands(image, seeds=[3], tiling=tiling, color_fix=color_fix, callback=calls.append))
    assert len(bands) > 2, "the chain should have run in several row bands"
    assert len(calls) == 1 and calls[0].x is None and calls[0].total == 1
    whole = shipped.restore(image, noise=whole_path_noise(3), tiling=tiling, color_fix=color_fix)
    assert torch.equal(gather(bands), whole)


def test_banded_vqgan_decode_is_the_whole_decode():
    pipe = load_pipeline(model="untrained-tiny", dtype="fp32", download=False)
    image = torch.rand(1, 3, 40, 56)
    tiling = TilingConfig(tile=32, overlap=8, vae_tile=12, vae_overlap=4)
    prepared = pipe.prepare(image)
    z0 = pipe.sample(pipe.encode(prepared, tiling), prepared, SeededNoise([1]), tiling=tiling)
    bands = list(pipe.decode_bands(z0, prepared, tiling))
    assert len(bands) > 2
    # the whole-image blend of the same VQGAN tiles, cropped to the output
    z = z0 / pipe.preset.scale_factor
    plan = TilePlan(z.shape[-2], z.shape[-1], tiling.vae_tile, tiling.vae_overlap)
    f = pipe.latent_factor
    out = torch.zeros(1, 3, z.shape[-2] * f, z.shape[-1] * f)
    total = torch.zeros(1, 1, *out.shape[-2:])
    with torch.no_grad():
        for i, tile in enumerate(plan.tiles):
            ys, xs = tile.slices()
            decoded = pipe.vae_net.decode(pipe._to_device(z[..., ys, xs]), quantize=pipe.preset.quantize).float()
            ys, xs = tile.slices(f)
            out[..., ys, xs] += decoded * plan.weight(i, f)
            total[..., ys, xs] += plan.weight(i, f)
    whole = (out / total)[..., : image.shape[-2] * pipe.sf, : image.shape[-1] * pipe.sf]
    assert torch.equal(gather(bands), whole)


def test_save_image_bands_writes_what_save_image_writes(tmp_path):
    rgb, alpha = torch.rand(3, 45, 31), torch.rand(1, 45, 31)
    for name, depth in [("a.png", 8), ("b.png", 16), ("c.webp", 8)]:
        save_image(tmp_path / ("whole_" + name), rgb, alpha, bit_depth=depth)
        save_image_bands(
            tmp_path / name,
            45,
            31,
            split_rows(rgb, random.Random(2)),
            lambda first, stop: alpha[:, first:stop],
            bit_depth=depth,
        )
        a, b = load_image(tmp_path / name), load_image(tmp_path / ("whole_" + name))
        assert a.alpha is not None and b.alpha is not None
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.alpha, b.alpha) and a.bit_depth == b.bit_depth == depth


def test_an_error_while_bands_are_computed_leaves_nothing_and_is_raised_as_it_is(tmp_path):
    def failing():
        yield 0, torch.rand(3, 4, 8)
        raise RuntimeError("the network failed")

    with pytest.raises(RuntimeError, match="the network failed"):
        save_image_bands(tmp_path / "x.png", 8, 8, failing())
    with pytest.raises(ImageError, match="bands hold 4 rows, the image 8"):
        save_image_bands(tmp_path / "y.png", 8, 8, [(0, torch.rand(3, 4, 8))])
    with pytest.raises(ImageError, match="NaN"):
        save_image_bands(tmp_path / "z.png", 8, 8, [(0, torch.rand(3, 4, 8)), (4, torch.full((3, 4, 8), np.nan))])
    assert list(tmp_path.iterdir()) == []


def test_the_memory_refusal_names_what_would_lower_it():
    from resshift_core.memory_estimate import (
        LATENT_STREAMED,
        PIXEL_STREAMED,
        PIXEL_WHOLE,
        how_to_lower,
        memory_model,
        too_large_message,
    )

    assert memory_model(True, True, "none") is PIXEL_STREAMED
    assert memory_model(True, True, "wavelet") is PIXEL_STREAMED
    assert memory_model(False, False, "none") is LATENT_STREAMED
    assert memory_model(True, False, "none") is PIXEL_WHOLE  # a multi-step pixel-space chain
    assert memory_model(True, True, "adain").per_output_pixel > 0
    # streaming: the 12-megapixel photo x4 fits the 4 GiB; whole-image work would not
    assert PIXEL_STREAMED.peak_bytes(4000, 3000, 4) < 4 * 2**30 < PIXEL_WHOLE.peak_bytes(4000, 3000, 4)
    lower = how_to_lower(True, False, "adain")
    assert "--color-fix wavelet" in lower and "--steps 1" in lower
    message = too_large_message("big.png", 8000, 8000, 4, PIXEL_WHOLE, 2**30, lower)
    assert message is not None and "big.png is 8000x8000" in message and "--steps 1" in message
    assert too_large_message("a.png", 10, 10, 4, PIXEL_STREAMED, 2**40) is None


def test_the_memory_estimate_counts_the_networks_on_the_cpu_and_what_is_held_already():
    """v3 + f4 in fp32 (the published networks) peaked at 1.83-1.93 GB whole-process for 128x128
    to 512x512 inputs x4; the estimate must not fall below that (it said 1.17 GB before the
    networks were counted), and what the process holds already is not asked for twice."""
    from resshift_core.memory_estimate import LATENT_STREAMED, network_bytes, too_large_message
    from resshift_core.tiling import CPU_TILING, unet_bytes_per_pixel, vae_bytes_per_pixel

    weights = 666 << 20  # v3's UNet and the f4 VQGAN in fp32
    largest = max(unet_bytes_per_pixel(160) * CPU_TILING.tile**2, vae_bytes_per_pixel(128) * CPU_TILING.vae_tile**2)
    networks = network_bytes(weights, int(largest), on_cpu=True)
    for side, measured_kib in ((128, 1_834_332), (256, 1_821_224), (512, 1_927_844)):
        predicted = LATENT_STREAMED.peak_bytes(side, side, 4, networks)
        assert measured_kib * 1024 <= predicted <= 1.2 * measured_kib * 1024
    assert network_bytes(weights, int(largest), on_cpu=False) == 0  # an accelerator holds them
    peak = LATENT_STREAMED.peak_bytes(512, 512, 4, networks)
    assert too_large_message("a.png", 512, 512, 4, LATENT_STREAMED, peak - 1, networks=networks) is not None
    held = 1 << 30
    assert (
        too_large_message("a.png", 512, 512, 4, LATENT_STREAMED, peak - held, networks=networks, resident=held) is None
    )
    message = too_large_message("a.png", 512, 512, 4, LATENT_STREAMED, 2**20, networks=networks, resident=held)
    assert message is not None and f"needs about {(peak - held) / 2**30:.1f} GiB more memory" in message


def test_banded_work_runs_without_autograd_and_leaves_the_callers_mode_alone(shipped):
    """The bands are generators: no_grad must hold inside each resumption (else every network
    call records a graph, and compiled graphs recompile for the other grad mode), and must not
    leak into the caller between bands."""
    seen = []
    forward = shipped.unet_net.forward

    def spy(*args, **kwargs):
        seen.append(torch.is_grad_enabled())
        return forward(*args, **kwargs)

    shipped.unet_net.forward = spy
    try:
        bands = shipped.restore_bands(torch.rand(1, 3, 150, 40), seeds=[1], tiling=TilingConfig(tile=256, overlap=16))
        for _, rows in bands:
            assert torch.is_grad_enabled() and not rows.requires_grad
    finally:
        del shipped.unet_net.forward
    assert seen and not any(seen)
    tiny = load_pipeline(model="untrained-tiny", dtype="fp32", download=False)
    decode = tiny.vae_net.decode
    modes = []

    def spy_decode(*args, **kwargs):
        modes.append(torch.is_grad_enabled())
        return decode(*args, **kwargs)

    tiny.vae_net.decode = spy_decode  # type: ignore[method-assign]
    tiling = TilingConfig(tile=32, overlap=8, vae_tile=12, vae_overlap=4)
    assert not tiny.restore(torch.rand(1, 3, 40, 40), seeds=[1], tiling=tiling).requires_grad
    assert modes and not any(modes) and torch.is_grad_enabled()

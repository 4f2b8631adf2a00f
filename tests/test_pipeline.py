"""The whole chain on tiny random networks: sizes, seeds, batches, tiling, errors."""

import pytest
import torch

from resshift_core.errors import ArchitectureError, InputError
from resshift_core.pipeline import ResShiftPipeline
from resshift_core.sampler import SeededNoise, StepInfo
from resshift_core.tiling import TilingConfig
from resshift_core.tiny import make_tiny


@pytest.fixture(scope="module")
def realsr():
    return ResShiftPipeline(*make_tiny("realsr"))


@pytest.mark.parametrize(("h", "w"), [(1, 1), (7, 13), (33, 17)])
def test_output_is_exactly_scale_times_input(realsr, h, w):
    out = realsr.restore(torch.rand(1, 3, h, w), seeds=[0])
    assert out.shape == (1, 3, 4 * h, 4 * w)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(("task", "sf"), [("realsr_x2", 2), ("inpaint", 1), ("faceir", 1)])
def test_every_task_gives_its_scale(task, sf):
    pipe = ResShiftPipeline(*make_tiny(task))
    masks = (torch.rand(1, 1, 10, 9) > 0.5).float() if task == "inpaint" else None
    out = pipe.restore(torch.rand(1, 3, 10, 9), masks, seeds=[0])
    assert out.shape == (1, 3, 10 * sf, 9 * sf)


def test_inpainting_keeps_known_pixels():
    pipe = ResShiftPipeline(*make_tiny("inpaint"))
    image = torch.rand(1, 3, 16, 16)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:10, 4:10] = 1
    out = pipe.restore(image, mask, seeds=[0])
    known = mask.expand_as(image) == 0
    torch.testing.assert_close(out[known], image[known])


def test_seed_decides_and_batch_mates_do_not(realsr):
    a, b = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    alone = realsr.restore(a, seeds=[5])
    together = realsr.restore(torch.cat([a, b]), seeds=[5, 6])
    torch.testing.assert_close(together[:1], alone, atol=1e-5, rtol=0)
    assert not torch.allclose(realsr.restore(a, seeds=[7]), alone)


def test_callback_sees_every_step_and_can_cancel(realsr):
    seen = []
    realsr.restore(torch.rand(1, 3, 8, 8), seeds=[0], callback=lambda info: seen.append((info.index, info.total)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)]

    class CancelledError(Exception):
        pass

    def cancel(info):
        if info.index == 1:
            raise CancelledError

    with pytest.raises(CancelledError):
        realsr.restore(torch.rand(1, 3, 8, 8), seeds=[0], callback=cancel)


def test_respacing_runs_fewer_steps():
    unet, vae = make_tiny("realsr")
    assert unet.preset is not None
    pipe = ResShiftPipeline(unet, vae, preset=unet.preset.with_overrides(steps=15))
    seen = []
    pipe.restore(torch.rand(1, 3, 8, 8), seeds=[0], steps=3, callback=lambda i: seen.append(i.timestep))
    assert seen == [10, 5, 0]


def test_one_tile_equals_untiled_exactly(realsr):
    image = torch.rand(1, 3, 20, 28)
    whole = realsr.restore(image, seeds=[3])
    tiled = realsr.restore(image, seeds=[3], tiling=TilingConfig(tile=512, vae_tile=512))
    assert torch.equal(whole, tiled)


def test_tiled_run_covers_odd_sizes(realsr):
    image = torch.rand(2, 3, 37, 21)
    out = realsr.restore(
        image, seeds=[1, 2], tiling=TilingConfig(tile=16, overlap=8, vae_tile=12, vae_overlap=4, batch=3)
    )
    assert out.shape == (2, 3, 148, 84) and torch.isfinite(out).all()


def test_bad_inputs_are_named(realsr):
    with pytest.raises(InputError, match="NaN"):
        realsr.restore(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(InputError, match="3 \\(RGB\\) channels"):
        realsr.restore(torch.rand(1, 4, 8, 8))
    with pytest.raises(InputError, match="does not do inpainting"):
        realsr.restore(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8))
    with pytest.raises(InputError, match="4-D"):
        realsr.restore(torch.rand(3, 8, 8))
    inpaint = ResShiftPipeline(*make_tiny("inpaint"))
    with pytest.raises(InputError, match="give a mask"):
        inpaint.restore(torch.rand(1, 3, 8, 8))
    with pytest.raises(InputError, match="2 masks for 1 images"):
        inpaint.restore(torch.rand(1, 3, 8, 8), torch.ones(2, 1, 8, 8))
    with pytest.raises(InputError, match="steps must be 1 to 4"):
        inpaint.restore(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8), steps=5)
    with pytest.raises(InputError, match="seed must be a whole number"):
        realsr.restore(torch.rand(1, 3, 8, 8), seeds=[2**70])
    with pytest.raises(InputError, match="unknown colour fix"):
        realsr.restore(torch.rand(1, 3, 8, 8), color_fix="sepia")


def test_mismatched_model_and_vae_are_refused():
    face_unet, _face_vae = make_tiny("faceir")
    sr_unet, sr_vae = make_tiny("realsr")
    with pytest.raises(ArchitectureError, match="8-channel latents"):
        ResShiftPipeline(face_unet, sr_vae)
    x2_unet, _ = make_tiny("realsr_x2")
    with pytest.raises(ArchitectureError, match="scale mismatch"):
        ResShiftPipeline(x2_unet, sr_vae, preset=sr_unet.preset)


def test_explicit_noise_is_reproducible(realsr):
    image = torch.rand(1, 3, 8, 8)
    a = realsr.restore(image, noise=SeededNoise([11]))
    b = realsr.restore(image, seeds=[11])
    assert torch.equal(a, b)


@pytest.mark.parametrize("task", ["pixel", "pixel_fold"])
def test_pixel_space_model_runs_without_a_vae(task):
    unet, vae = make_tiny(task)
    assert vae is None
    pipe = ResShiftPipeline(unet, None)
    out = pipe.restore(torch.rand(1, 3, 9, 11), seeds=[0])
    assert out.shape == (1, 3, 36, 44)
    tiled = pipe.restore(torch.rand(1, 3, 9, 11), seeds=[0], tiling=TilingConfig(tile=16, overlap=4))
    assert tiled.shape == (1, 3, 36, 44)
    with pytest.raises(ArchitectureError, match="pixel-space"):
        ResShiftPipeline(unet, make_tiny("realsr")[1])


def test_out_of_memory_retries_with_smaller_tiles_and_calls_the_hook(monkeypatch):
    unet, vae = make_tiny("realsr")
    calls = []
    pipe = ResShiftPipeline(unet, vae, on_out_of_memory=lambda stage, smaller: calls.append((stage, smaller.tile)))
    image = torch.rand(1, 3, 24, 24)  # one tile of more than 16 latent pixels
    tiling = TilingConfig(tile=32, overlap=8, vae_tile=64, vae_overlap=8)
    expected = pipe.restore(image, seeds=[3], tiling=tiling.smaller("unet"))
    net = unet.model
    real_forward = net.forward
    sizes = []

    def forward(x, t, lq=None, mask=None, noise=None):
        sizes.append(x.shape[-1])
        if x.shape[-1] > 16:  # tiles above 16 latent pixels "do not fit"
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(x, t, lq=lq, mask=mask, noise=noise)

    monkeypatch.setattr(net, "forward", forward)
    try:
        out = pipe.restore(image, seeds=[3], tiling=tiling)
        # Same noise field and the tile size that worked: the same image as asking for it directly.
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
        assert calls == [("unet", 16)] and sizes[0] > 16 and set(sizes[1:]) == {16}
        monkeypatch.setattr(net, "forward", lambda *a, **k: (_ for _ in ()).throw(ValueError("not a memory problem")))
        with pytest.raises(ValueError, match="not a memory problem"):
            pipe.restore(image, seeds=[3], tiling=tiling)
        assert len(calls) == 1  # other errors are never retried
    finally:
        monkeypatch.undo()


def test_place_models_false_leaves_the_networks_alone():
    unet, vae = make_tiny("realsr")

    def first_weight() -> torch.Tensor:
        return unet.model.get_parameter("input_blocks.0.0.weight")

    before = first_weight()
    ResShiftPipeline(unet, vae, device="cpu", dtype=torch.bfloat16, place_models=False)
    assert first_weight() is before and before.dtype == torch.float32
    ResShiftPipeline(unet, vae, device="cpu", dtype=torch.bfloat16)
    assert first_weight().dtype == torch.bfloat16


def test_a_preset_can_default_to_fewer_sampling_steps(realsr):
    from dataclasses import replace

    seen: list[StepInfo] = []
    one_step = replace(realsr.preset, sample_steps=1)
    pipe = ResShiftPipeline(realsr.unet, realsr.vae, preset=one_step)
    image = torch.rand(1, 3, 8, 8)
    out = pipe.restore(image, seeds=[5], callback=seen.append)
    assert len(seen) == 1 and one_step.default_steps == 1 and one_step.steps == 4
    torch.testing.assert_close(out, realsr.restore(image, seeds=[5], steps=1))
    assert len(seen) == 1
    realsr.restore(image, seeds=[5], callback=seen.append)  # the published preset: every trained step
    assert len(seen) == 5
    with pytest.raises(ValueError, match="sample_steps"):
        replace(realsr.preset, sample_steps=5)


def test_trailing_spacing_samples_one_step_at_the_last_trained_timestep(realsr):
    from dataclasses import replace

    seen_t = []
    net = realsr.unet.model
    forward = net.forward

    def spy(x, t, **kw):
        seen_t.append(t.tolist())
        return forward(x, t, **kw)

    image = torch.rand(1, 3, 8, 8)
    trailing = ResShiftPipeline(realsr.unet, realsr.vae, preset=replace(realsr.preset, spacing="trailing"))
    net.forward = spy
    try:
        realsr.restore(image, seeds=[1], steps=1)
        trailing.restore(image, seeds=[1], steps=1)
        trailing.restore(image, seeds=[1], steps=2)
    finally:
        net.forward = forward
    assert seen_t == [[0], [3], [3], [1]]  # published: t = 0 alone; trailing: from t = T-1
    with pytest.raises(ValueError, match="spacing='even'"):
        replace(realsr.preset, spacing="even")


def test_activation_estimate_counts_the_pixels_the_unet_sees():
    from resshift_core.tiling import unet_bytes_per_pixel, vae_bytes_per_pixel

    tiling = TilingConfig(tile=64, vae_tile=32, batch=2, vae_batch=1)
    plain = ResShiftPipeline(*make_tiny("pixel"))
    folded = ResShiftPipeline(*make_tiny("pixel_fold"))
    assert plain.activation_bytes("unet", 10**6, tiling) == int(unet_bytes_per_pixel(32) * 64 * 64 * 2)
    # a UNet folding 4x4 pixel blocks sees 16 times fewer pixels
    assert folded.activation_bytes("unet", 10**6, tiling) == int(unet_bytes_per_pixel(32) * 64 * 64 * 2 // 16)
    assert plain.activation_bytes("unet", 100, tiling) == int(unet_bytes_per_pixel(32) * 100)  # small images
    latent = ResShiftPipeline(*make_tiny("realsr"), dtype=torch.bfloat16)
    assert latent.activation_bytes("vae", 10**6, tiling) == int(vae_bytes_per_pixel(32, 2) * 32 * 32)
    # what the memory estimate adds for the networks: the hungrier stage's full tile, and the weights
    full_tiles = max(latent.activation_bytes("unet", 10**9, tiling), latent.activation_bytes("vae", 10**9, tiling))
    assert latent.largest_call_bytes(tiling) == full_tiles
    assert plain.largest_call_bytes(tiling) == plain.activation_bytes("unet", 10**9, tiling)  # no VQGAN
    params = sum(p.numel() for net in (latent.unet_net, latent.vae_net) for p in net.parameters())
    assert latent.weight_bytes >= 2 * params  # bf16: 2 bytes each, plus the buffers
    assert ResShiftPipeline(*make_tiny("realsr")).weight_bytes >= 4 * params


def test_weights_read_from_a_file_are_copied_once_into_the_pipelines_dtype(tmp_path, monkeypatch):
    """load_pipeline copies a file's weights straight into the pipeline's dtype: a float32 copy
    converted afterwards left 0.3 GB of freed float32 behind in a bf16 process (v3 + f4: 972 MiB
    resident after loading, 637 now)."""
    from resshift_core.checkpoints import loading
    from resshift_core.request import load_pipeline
    from resshift_core.tiny import write_tiny_checkpoints

    unet_file, vae_file = write_tiny_checkpoints(tmp_path, "realsr")
    made = []
    owned_copy = loading._owned_copy

    def spy(t, device, dtype):
        out = owned_copy(t, device, dtype)
        made.append(out.dtype)
        return out

    monkeypatch.setattr(loading, "_owned_copy", spy)
    pipe = load_pipeline(model=unet_file, vae=vae_file, device="cpu", dtype="bf16", download=False)
    floating = [d for d in made if d.is_floating_point]
    assert floating and set(floating) == {torch.bfloat16}
    assert all(p.dtype == torch.bfloat16 for net in (pipe.unet_net, pipe.vae_net) for p in net.parameters())

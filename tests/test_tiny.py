"""The one builder of tiny networks (resshift_core.tiny): overrides, seeds, the task catalogue."""

import pytest
import torch

from resshift_core.tiny import (
    PIXEL_TASKS,
    TASKS,
    make_tiny,
    tiny_unet,
    tiny_unet_config,
    tiny_vqgan,
    tiny_vqgan_config,
    write_tiny_checkpoints,
)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_builds_its_pair(task):
    unet, vae = make_tiny(task)
    spec = TASKS[task]
    assert unet.preset is not None and unet.preset.name == spec.preset
    assert unet.config == tiny_unet_config(task)
    assert unet.config.in_channels == spec.latent_channels
    assert unet.config.lq_size == unet.config.image_size * spec.lq_ratio
    if task in PIXEL_TASKS:
        assert vae is None
    else:
        assert vae is not None and vae.config == tiny_vqgan_config(task)
        assert vae.model.config.downsample_factor == spec.vae_factor


def test_overrides_replace_fields_and_lq_size_follows_image_size():
    cfg = tiny_unet_config("inpaint", image_size=8, window_size=2)
    assert (cfg.image_size, cfg.window_size, cfg.lq_size, cfg.cond_mask) == (8, 2, 32, True)
    assert tiny_unet_config("inpaint", image_size=8, lq_size=16).lq_size == 16  # unless it is given
    vq = tiny_vqgan_config("faceir", n_embed=16, ch_mult=(1, 2))
    assert (vq.n_embed, vq.downsample_factor, vq.latent_channels) == (16, 2, 8)


def test_unknown_fields_are_named():
    with pytest.raises(TypeError, match="UNetConfig has no field window, winodw_size"):
        tiny_unet_config("realsr", winodw_size=2, window=3)
    with pytest.raises(TypeError, match="VQGANConfig has no field chmult"):
        tiny_vqgan_config("realsr", chmult=(1, 2))
    with pytest.raises(TypeError, match="UNetConfig has no field"):
        make_tiny("realsr", unet_overrides={"bogus": 1})


def test_seeds_are_reproducible_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = tiny_unet("realsr", seed=1)
    assert torch.equal(torch.rand(3), expected)  # drawing the weights did not advance it
    assert _same_weights(a, tiny_unet("realsr", seed=1))
    assert not _same_weights(a, tiny_unet("realsr", seed=2))
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_tiny_unet_is_the_unet_of_make_tiny():
    unet, vae = make_tiny("faceir", seed=4)
    assert _same_weights(tiny_unet("faceir", seed=4), unet.model)
    assert vae is not None and tiny_vqgan("faceir", seed=4).config == vae.config  # drawn after the UNet there


def test_make_tiny_overrides_reach_both_networks():
    unet, vae = make_tiny("realsr", unet_overrides={"window_size": 2}, vqgan_overrides={"n_embed": 8})
    assert unet.model.config == unet.config == tiny_unet_config("realsr", window_size=2)
    assert vae is not None and vae.model.config.n_embed == 8


def test_written_checkpoints_are_named_per_task(tmp_path):
    unet_path, vae_path = write_tiny_checkpoints(tmp_path, "pixel")
    assert unet_path.name == "tiny_pixel_unet.safetensors" and vae_path is None
    unet_path, vae_path = write_tiny_checkpoints(tmp_path, "bicsr")
    assert vae_path is not None
    assert [unet_path.name, vae_path.name] == ["tiny_bicsr_unet.safetensors", "tiny_bicsr_vae.safetensors"]


STUDENT_TASKS = ("sinsr", "rsd", "distilled", "distilled_add", "distilled_x2")


@pytest.mark.parametrize("task", STUDENT_TASKS)
def test_student_tasks_run_in_the_pipeline_and_reload_from_their_files(tmp_path, task):
    from resshift_core.checkpoints.loading import load_unet, load_vae
    from resshift_core.pipeline import ResShiftPipeline

    unet, vae = make_tiny(task)
    spec = TASKS[task]
    assert unet.preset is not None and unet.preset.one_step
    config = unet.model.config
    assert (config.noise_channels, config.noise_injection) == (spec.noise_channels, spec.noise_injection)
    assert unet.preset.noise_map == (spec.noise_injection if spec.noise_channels else "none")
    out = ResShiftPipeline(unet, vae).restore(torch.rand(1, 3, 8, 8), seeds=[0], tiling=None)
    assert out.shape == (1, 3, 8 * unet.preset.sf, 8 * unet.preset.sf)
    unet_path, vae_path = write_tiny_checkpoints(tmp_path, task)
    assert vae_path is not None
    loaded = load_unet(unet_path)
    assert loaded.preset == unet.preset and loaded.preset_source == "metadata"
    ResShiftPipeline(loaded, load_vae(vae_path))  # the pair is accepted as written


def test_the_distilled_add_task_takes_its_noise_through_noise_proj():
    unet, _ = make_tiny("distilled_add")
    assert unet.preset is not None and (unet.preset.name, unet.preset.noise_map) == ("distilled_x4", "add")
    assert tuple(unet.model.state_dict()["noise_proj.weight"].shape[:2]) == (32, 3)


def test_write_distilled_student_writes_their_format_only(tmp_path):
    from safetensors import safe_open

    from resshift_core.checkpoints.io import read_checkpoint
    from resshift_core.tiny import write_distilled_student, zero_noise_weights

    path = write_distilled_student(tmp_path / "s.safetensors", noise_mode="add", cond_lq="pixel", module_prefix=True)
    with safe_open(str(path), framework="pt") as f:
        header, keys = f.metadata(), list(f.keys())
    assert header == {"noise_mode": "add", "noise_channels": "3", "cond_lq": "pixel"}  # no resshift.* keys
    assert all(k.startswith("module.") for k in keys)
    state, _ = read_checkpoint(path)
    assert state["noise_proj.weight"].abs().sum() > 0  # random, unless asked to be zero
    zeroed, _ = read_checkpoint(write_distilled_student(tmp_path / "z.safetensors", zero_noise=True))
    assert torch.count_nonzero(zeroed["input_blocks.0.0.weight"][:, -1]) == 0
    assert torch.count_nonzero(zeroed["input_blocks.0.0.weight"][:, :-1]) > 0
    with pytest.raises(ValueError, match="takes no noise map"):
        zero_noise_weights(tiny_unet("sinsr"))

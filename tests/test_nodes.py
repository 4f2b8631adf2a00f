"""The ComfyUI nodes on a fake host (tests/fake_comfy): declared inputs, the model folder, the
modular chain against the pipeline, batches and seeds, progress and interrupt, memory through
the host, out-of-memory retries, dtype choice, wrong files, and downloads on first use."""

import inspect
import re
import sys

import pytest
import torch

from conftest import one_torch_thread, served_entry, serving
from fake_comfy import (
    WIDGET_TYPES,
    declared_inputs,
    install_file,
    install_tiny,
    is_widget,
    load_pack,
)
from resshift_core import registry
from resshift_core.checkpoints.loading import load_unet, load_vae
from resshift_core.errors import CheckpointError, InputError, ResShiftError
from resshift_core.pipeline import ResShiftPipeline

CORE_NODE_IDS = {"LoadImage", "SaveImage", "VAEDecode", "VAEEncode", "KSampler", "ImageScale", "UpscaleModelLoader"}


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def realsr(comfy, tiny_cache):
    install_tiny(comfy.models_dir, tiny_cache)
    (model,) = comfy.run("ResShiftModelLoader", model_name="resshift_realsrx4_s4_v3.pth", preset="auto", dtype="auto")
    (vae,) = comfy.run("ResShiftVAELoader", vae_name="autoencoder_vq_f4.pth", dtype="auto")
    return model, vae


def tolerance(comfy) -> float:
    """Same arithmetic on the CPU. On a GPU, batch size picks other (TF32) kernels: on an H100
    the tiny random networks' outputs then differ by up to ~1e-2 (seen: 0.009)."""
    return 1e-5 if comfy.mm.get_torch_device().type == "cpu" else 3e-2


def modular(comfy, model, vae, image, seed, mask=None, steps=0, fix="none", tile=0, vae_tile=0):
    (latent,) = comfy.run("ResShiftEncode", model=model, image=image, vae_tile_size=vae_tile, vae=vae, mask=mask)
    (latent,) = comfy.run(
        "ResShiftSampler", model=model, latent=latent, seed=seed, steps=steps, tile_size=tile, tile_overlap=0
    )
    (out,) = comfy.run("ResShiftDecode", latent=latent, vae_tile_size=vae_tile, color_fix=fix, vae=vae)
    return out


# -- declarations ---------------------------------------------------------------------------------


def test_every_node_declares_its_inputs_properly(comfy):
    assert set(comfy.nodes) == set(comfy.pack.NODE_DISPLAY_NAME_MAPPINGS)
    for node_id, cls in comfy.nodes.items():
        assert node_id.startswith("ResShift") and node_id not in CORE_NODE_IDS
        assert comfy.pack.NODE_DISPLAY_NAME_MAPPINGS[node_id]
        assert isinstance(cls.RETURN_TYPES, tuple) and cls.CATEGORY.startswith("ResShift")
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
        assert cls.DESCRIPTION
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"} and spec["required"]
        params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        for name, input_type, options, category in declared_inputs(cls):
            where = f"{node_id}.{name}"
            assert name in params, f"{where} is not a parameter of {cls.FUNCTION}"
            if category == "optional":
                assert params[name].default is None, f"{where}: optional inputs default to None"
            assert options.get("tooltip"), f"{where} has no tooltip"
            if isinstance(input_type, list):
                assert input_type and all(isinstance(v, str) for v in input_type), where
                if "default" in options:
                    assert options["default"] in input_type, where
            elif input_type in WIDGET_TYPES:
                assert "default" in options, f"{where} has no default"
                if input_type == "INT":
                    assert (
                        isinstance(options["default"], int) and options["min"] <= options["default"] <= options["max"]
                    ), where
                    assert options["max"] <= 0xFFFFFFFFFFFFFFFF
            else:
                assert input_type.isupper() and not is_widget(input_type), where
        for name in params:
            if name != "self":
                assert name in spec["required"] or name in spec.get("optional", {}), (
                    f"{node_id}: stray parameter {name}"
                )
    our_types = {t for cls in comfy.nodes.values() for t in cls.RETURN_TYPES}
    assert {"RESSHIFT_MODEL", "RESSHIFT_VAE", "RESSHIFT_LATENT", "IMAGE"} == our_types
    assert "LATENT" not in our_types  # our latents never reach core VAE nodes


def test_models_folder_is_registered_and_merges_extra_model_paths(comfy, tmp_path):
    fp = comfy.folder_paths
    paths, extensions = fp.folder_names_and_paths["resshift"]
    assert paths == [str(comfy.models_dir)] and extensions == fp.supported_pt_extensions
    assert extensions is not fp.supported_pt_extensions  # a copy: the host's set is not ours to change
    # extra_model_paths.yaml is read before custom nodes load and registers the folder bare
    del fp.folder_names_and_paths["resshift"]
    extra = tmp_path / "elsewhere"
    fp.add_model_folder_path("resshift", str(extra))
    load_pack()
    paths, extensions = fp.folder_names_and_paths["resshift"]
    assert paths == [str(comfy.models_dir), str(extra)] and ".safetensors" in extensions and ".pth" in extensions
    extra.mkdir()
    (extra / "mine.safetensors").write_bytes(b"x")
    (extra / "readme.txt").write_text("not a checkpoint")
    assert "mine.safetensors" in comfy.nodes["ResShiftModelLoader"].INPUT_TYPES()["required"]["model_name"][0]
    assert "readme.txt" not in comfy.nodes["ResShiftModelLoader"].INPUT_TYPES()["required"]["model_name"][0]


def test_dropdowns_list_files_and_every_published_checkpoint(comfy):
    comfy.models_dir.mkdir(parents=True)
    (comfy.models_dir / "my_finetune.safetensors").write_bytes(b"x")
    (comfy.models_dir / "autoencoder_vq_f4.safetensors").write_bytes(b"x")  # a VAE by its name
    (comfy.models_dir / ".resshift_bicsrx4_s4.pth.123-abcd.part").write_bytes(b"x")  # a download under way
    models = comfy.nodes["ResShiftModelLoader"].INPUT_TYPES()["required"]["model_name"][0]
    vaes = comfy.nodes["ResShiftVAELoader"].INPUT_TYPES()["required"]["vae_name"][0]
    for entry in registry.entries():
        assert entry.file in (models if entry.part == "unet" else vaes)
        assert entry.file not in (vaes if entry.part == "unet" else models)
    assert "my_finetune.safetensors" in models and "my_finetune.safetensors" in vaes
    assert "autoencoder_vq_f4.safetensors" in vaes and "autoencoder_vq_f4.safetensors" not in models
    assert not any(".part" in n for n in models + vaes)
    presets = comfy.nodes["ResShiftModelLoader"].INPUT_TYPES()["required"]["preset"][0]
    assert presets == ["auto", *registry.preset_names()]


# -- the chain ------------------------------------------------------------------------------------


def test_modular_chain_equals_pipeline_and_one_node(comfy, realsr, tiny_cache):
    model, vae = realsr
    image = torch.rand(2, 13, 17, 3)
    out = modular(comfy, model, vae, image, seed=7)
    assert out.shape == (2, 52, 68, 3) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.min() >= 0 and out.max() <= 1

    path_u = comfy.models_dir / "resshift_realsrx4_s4_v3.safetensors"
    path_v = comfy.models_dir / "autoencoder_vq_f4.safetensors"
    pipe = ResShiftPipeline(load_unet(path_u), load_vae(path_v), device=comfy.mm.get_torch_device())
    expected = pipe.restore(image.movedim(-1, 1), seeds=[7, 8]).movedim(1, -1).cpu()
    torch.testing.assert_close(out, expected, atol=tolerance(comfy), rtol=0)

    (one,) = comfy.run(
        "ResShiftUpscale",
        model=model,
        image=image,
        seed=7,
        steps=0,
        tile_size=0,
        tile_overlap=0,
        vae_tile_size=0,
        color_fix="none",
        vae=vae,
    )
    torch.testing.assert_close(one, out, atol=0, rtol=0)


def test_shipped_pixel_space_model_runs_without_a_vae(comfy, tiny_cache):
    """The model we ship (the command line's default) has no VQGAN: in the nodes the VAE inputs stay
    unconnected, its preset's single trailing step is used, and the result is the core pipeline's."""
    shipped = registry.find("resshift_tiny_realsr_x4.safetensors")
    assert shipped is not None and shipped.local_path is not None
    install_file(comfy.models_dir, shipped.local_path)
    (model,) = comfy.run("ResShiftModelLoader", model_name=shipped.file, preset="auto", dtype="fp32")
    image = torch.rand(1, 20, 36, 3)
    out = modular(comfy, model, None, image, seed=3)
    assert out.shape == (1, 80, 144, 3)
    assert [p for p in comfy.progress if p[1] == 1] == [(1, 1)]  # one step, not the 4 trained ones

    pipe = ResShiftPipeline(load_unet(shipped.local_path), None, device=comfy.mm.get_torch_device())
    expected = pipe.restore(image.movedim(-1, 1), seeds=[3]).movedim(1, -1).cpu()
    torch.testing.assert_close(out, expected, atol=tolerance(comfy), rtol=0)
    (one,) = comfy.run(
        "ResShiftUpscale",
        model=model,
        image=image,
        seed=3,
        steps=0,
        tile_size=0,
        tile_overlap=0,
        vae_tile_size=0,
        color_fix="none",
    )
    torch.testing.assert_close(one, out, atol=0, rtol=0)

    install_tiny(comfy.models_dir, tiny_cache, ["autoencoder_vq_f4"])
    (vae,) = comfy.run("ResShiftVAELoader", vae_name="autoencoder_vq_f4.safetensors", dtype="auto")
    with pytest.raises(ResShiftError, match="pixel-space model: run it without a VAE"):
        comfy.run("ResShiftEncode", model=model, image=image, vae=vae)
    (latent,) = comfy.run("ResShiftEncode", model=model, image=image)
    with pytest.raises(ResShiftError, match="leave the VAE out"):
        comfy.run("ResShiftDecode", latent=latent, vae=vae)


def test_each_image_of_a_batch_gets_seed_plus_index_and_its_own_result(comfy, realsr):
    model, vae = realsr
    images = torch.rand(3, 8, 8, 3)
    batch = modular(comfy, model, vae, images, seed=100)
    alone = modular(comfy, model, vae, images[2:3], seed=102)
    torch.testing.assert_close(batch[2:3], alone, atol=tolerance(comfy), rtol=0)
    assert not torch.allclose(modular(comfy, model, vae, images[2:3], seed=100), alone)


def test_steps_tiles_and_colour_fix(comfy, realsr):
    model, vae = realsr
    image = torch.rand(1, 24, 20, 3)
    few = modular(comfy, model, vae, image, seed=1, steps=2)
    assert few.shape == (1, 96, 80, 3)
    assert [p for p in comfy.progress if p[1] == 2] == [(1, 2), (2, 2)]
    tiled = modular(comfy, model, vae, image, seed=1, tile=16, vae_tile=12)
    whole = modular(comfy, model, vae, image, seed=1)
    assert tiled.shape == whole.shape and tiled.min() >= 0 and tiled.max() <= 1  # random nets: no closeness
    for fix in ("wavelet", "adain"):
        fixed = modular(comfy, model, vae, image, seed=1, fix=fix)
        assert fixed.shape == whole.shape and fixed.min() >= 0 and fixed.max() <= 1
        assert not torch.equal(fixed, whole)
    (same,) = comfy.run("ResShiftColorFix", image=whole, reference=image, method="none")
    assert same is whole
    (cf,) = comfy.run("ResShiftColorFix", image=whole, reference=image, method="adain")
    assert cf.shape == whole.shape
    with pytest.raises(InputError, match="trained with 4 steps"):
        modular(comfy, model, vae, image, seed=1, steps=5)


@pytest.mark.parametrize(
    ("task", "model_name", "vae_name", "sf"),
    [
        ("inpaint", "resshift_inpainting_imagenet_s4.pth", "autoencoder_vq_f4.pth", 1),
        ("faceir", "resshift_faceir_s4.pth", "ffhq512_vq_f8_dim8_face.pth", 1),
        ("bicsr", "resshift_bicsrx4_s4.pth", "autoencoder_vq_f4.pth", 4),
    ],
)
def test_every_task(comfy, tiny_cache, task, model_name, vae_name, sf):
    install_tiny(comfy.models_dir, tiny_cache)
    (model,) = comfy.run("ResShiftModelLoader", model_name=model_name, preset="auto", dtype="auto")
    (vae,) = comfy.run("ResShiftVAELoader", vae_name=vae_name, dtype="auto")
    image = torch.rand(1, 18, 22, 3)
    mask = None
    if task == "inpaint":
        mask = torch.zeros(1, 9, 11)  # a smaller mask is resized to the image
        mask[:, 2:6, 3:8] = 1
    (out,) = comfy.run(
        "ResShiftUpscale",
        model=model,
        image=image,
        seed=0,
        steps=0,
        tile_size=0,
        tile_overlap=0,
        vae_tile_size=0,
        color_fix="none",
        vae=vae,
        mask=mask,
    )
    assert out.shape == (1, 18 * sf, 22 * sf, 3)
    if mask is not None:
        hole = torch.nn.functional.interpolate(mask[:, None], size=(18, 22), mode="bilinear")[:, 0] > 0.5
        keep = ~hole
        torch.testing.assert_close(out[keep], image[keep], atol=1e-6, rtol=0)
        with pytest.raises(InputError, match="give a mask"):
            comfy.run("ResShiftUpscale", model=model, image=image, seed=0, vae=vae)
    else:
        with pytest.raises(InputError, match="does not do inpainting"):
            comfy.run("ResShiftUpscale", model=model, image=image, seed=0, vae=vae, mask=torch.ones(1, 18, 22))


def test_mismatched_wiring_says_what_to_connect(comfy, tiny_cache, realsr):
    model, vae = realsr
    (face_vae,) = comfy.run("ResShiftVAELoader", vae_name="ffhq512_vq_f8_dim8_face.pth", dtype="auto")
    (face,) = comfy.run("ResShiftModelLoader", model_name="resshift_faceir_s4.pth", preset="auto", dtype="auto")
    image = torch.rand(1, 8, 8, 3)
    with pytest.raises(ResShiftError, match=r"8-channel|3-channel"):
        comfy.run("ResShiftEncode", model=model, image=image, vae=face_vae)
    with pytest.raises(ResShiftError, match="Load ResShift VAE"):
        comfy.run("ResShiftEncode", model=model, image=image)
    (latent,) = comfy.run("ResShiftEncode", model=model, image=image, vae=vae)
    with pytest.raises(InputError, match="same Load ResShift Model"):
        comfy.run("ResShiftSampler", model=face, latent=latent, seed=0)
    with pytest.raises(ResShiftError, match="decode with the VAE used to encode"):
        comfy.run("ResShiftDecode", latent=latent, vae=face_vae)


# -- host integration ---------------------------------------------------------------------------


def test_previews_follow_the_hosts_setting(comfy, realsr):
    import importlib

    model, vae = realsr
    (latent,) = comfy.run("ResShiftEncode", model=model, image=torch.rand(2, 12, 20, 3), vae=vae)
    comfy.run("ResShiftSampler", model=model, latent=latent, seed=0)
    assert comfy.previews == []  # ComfyUI's default: --preview-method none
    cli_args = importlib.import_module("comfy.cli_args")
    cli_args.args.preview_method = cli_args.LatentPreviewMethod.Auto
    cli_args.args.preview_size = 32
    comfy.run("ResShiftSampler", model=model, latent=latent, seed=0)
    assert len(comfy.previews) == 4
    kind, image, size = comfy.previews[-1]
    assert (kind, size) == ("JPEG", 32)
    assert image.mode == "RGB" and max(image.size) <= 32 and image.size[0] > image.size[1]  # 20 wide, 12 high


def test_progress_per_step_and_interrupt_leaves_nothing_half_loaded(comfy, realsr):
    model, vae = realsr
    image = torch.rand(1, 8, 8, 3)
    (latent,) = comfy.run("ResShiftEncode", model=model, image=image, vae=vae)
    first = comfy.run("ResShiftSampler", model=model, latent=latent, seed=3)[0].samples
    assert comfy.progress == [(1, 4), (2, 4), (3, 4), (4, 4)]

    comfy.progress.clear()
    comfy.interrupt_at = 2
    with pytest.raises(comfy.mm.InterruptProcessingException):
        comfy.run("ResShiftSampler", model=model, latent=latent, seed=3)
    comfy.interrupt_at = None
    assert not comfy.mm.processing_interrupted()  # the host's flag was consumed, as in ComfyUI
    assert len(comfy.progress) == 2
    for loaded in comfy.mm.current_loaded_models:
        assert loaded.model.fully_loaded()
    assert latent.samples is latent.z_y  # the input latent was not touched

    comfy.mm.interrupt_current_processing(True)  # an interrupt before the node starts
    with pytest.raises(comfy.mm.InterruptProcessingException):
        comfy.run("ResShiftSampler", model=model, latent=latent, seed=3)
    again = comfy.run("ResShiftSampler", model=model, latent=latent, seed=3)[0].samples
    torch.testing.assert_close(again, first, atol=0, rtol=0)


def test_networks_load_fully_through_the_host_even_with_little_memory(comfy, realsr):
    model, vae = realsr
    mm = comfy.mm
    mm.FREE_MEMORY = 1 << 16  # far less than the networks: ComfyUI would load partially
    (latent,) = comfy.run("ResShiftEncode", model=model, image=torch.rand(1, 8, 8, 3), vae=vae)
    (latent,) = comfy.run("ResShiftSampler", model=model, latent=latent, seed=0)
    assert model.patcher.fully_loaded() and mm.current_loaded_models[0].model is model.patcher
    assert not vae.patcher.fully_loaded()  # the host made room for the UNet: fine, the VAE is idle
    comfy.run("ResShiftDecode", latent=latent, vae=vae)
    assert vae.patcher.fully_loaded() and mm.current_loaded_models[0].model is vae.patcher
    loads = [kw for name, kw in mm.calls if name == "load_models_gpu"]
    assert [kw["models"] for kw in loads] == [[vae.patcher], [model.patcher], [vae.patcher]]
    assert all(kw["force_full_load"] and kw["memory_required"] > 0 for kw in loads)
    # the fake reproduces what force_full_load prevents: a partial load of non-comfy.ops modules
    fresh = comfy.model_patcher.ModelPatcher(
        torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 64)),
        mm.get_torch_device(),
        torch.device("cpu"),
    )
    mm.load_models_gpu([fresh], memory_required=0)
    assert not fresh.fully_loaded()


def test_one_model_patcher_per_network(comfy, realsr):
    model, vae = realsr
    assert isinstance(model.patcher, comfy.model_patcher.ModelPatcher) and model.patcher.model is model.loaded.model
    assert isinstance(vae.patcher, comfy.model_patcher.ModelPatcher) and vae.patcher.model is vae.loaded.model
    assert model.patcher.load_device == comfy.mm.get_torch_device()
    assert model.patcher.offload_device == comfy.mm.unet_offload_device()
    assert vae.patcher.offload_device == comfy.mm.vae_offload_device()
    (latent,) = comfy.run("ResShiftEncode", model=model, image=torch.rand(1, 8, 8, 3), vae=vae)
    for value in (latent.unet, latent.vae):  # latents carry skeletons, never the weights
        assert all(p.is_meta for p in value.model.parameters())


def test_out_of_memory_retries_with_smaller_tiles(comfy, realsr):
    model, vae = realsr
    (latent,) = comfy.run("ResShiftEncode", model=model, image=torch.rand(1, 16, 16, 3), vae=vae)
    (latent,) = comfy.run("ResShiftSampler", model=model, latent=latent, seed=0)
    decoder = vae.loaded.model
    real_decode = decoder.decode
    seen = []

    def decode(h, quantize=True):
        seen.append(tuple(h.shape[-2:]))
        if h.shape[-1] > 12:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_decode(h, quantize=quantize)

    comfy.mm.calls.clear()
    decoder.decode = decode
    try:
        (out,) = comfy.run("ResShiftDecode", latent=latent, vae_tile_size=0, color_fix="none", vae=vae)
    finally:
        del decoder.decode
    assert out.shape == (1, 64, 64, 3) and out.min() >= 0 and out.max() <= 1
    assert seen[0] == (16, 16) and max(seen[-1]) <= 12
    names = [name for name, _ in comfy.mm.calls]
    assert names.count("soft_empty_cache") >= 1 and names.count("load_models_gpu") >= 2

    def always_oom(h, quantize=True):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    decoder.decode = always_oom
    try:
        with pytest.raises(torch.cuda.OutOfMemoryError):
            comfy.run("ResShiftDecode", latent=latent, vae=vae)
    finally:
        del decoder.decode

    def broken(h, quantize=True):
        raise ValueError("not a memory problem")

    decoder.decode = broken
    try:
        comfy.mm.calls.clear()
        with pytest.raises(ValueError, match="not a memory problem"):
            comfy.run("ResShiftDecode", latent=latent, vae=vae)
        assert "soft_empty_cache" not in [name for name, _ in comfy.mm.calls]
    finally:
        del decoder.decode


def test_dtype_follows_the_host_or_the_choice(comfy, tiny_cache):
    install_tiny(comfy.models_dir, tiny_cache)
    mm = comfy.mm

    def load(part, dtype):
        if part == "unet":
            return comfy.run(
                "ResShiftModelLoader", model_name="resshift_realsrx4_s4_v3.pth", preset="auto", dtype=dtype
            )[0]
        return comfy.run("ResShiftVAELoader", vae_name="autoencoder_vq_f4.pth", dtype=dtype)[0]

    assert load("unet", "auto").dtype == torch.float32 and load("vae", "auto").dtype == torch.float32
    mm.SUPPORTS_BF16 = mm.SUPPORTS_FP16 = True  # an accelerator that runs both well
    unet = load("unet", "auto")
    assert unet.dtype == torch.bfloat16 and next(unet.loaded.model.parameters()).dtype == torch.bfloat16
    assert load("vae", "auto").dtype == torch.float32  # the VQGAN stays fp32 unless the host says
    mm.FORCED_UNET_DTYPE, mm.FORCED_VAE_DTYPE = torch.float16, torch.bfloat16  # --fp16-unet --bf16-vae
    assert load("unet", "auto").dtype == torch.float16 and load("vae", "auto").dtype == torch.bfloat16
    assert load("unet", "fp32").dtype == torch.float32 and load("vae", "fp16").dtype == torch.float16


def test_preset_override(comfy, tiny_cache):
    install_tiny(comfy.models_dir, tiny_cache)
    (auto,) = comfy.run("ResShiftModelLoader", model_name="resshift_realsrx4_s4_v3.pth", preset="auto", dtype="auto")
    (s15,) = comfy.run(
        "ResShiftModelLoader", model_name="resshift_realsrx4_s4_v3.pth", preset="realsr_x4_s15", dtype="auto"
    )
    assert auto.preset.name == "realsr_x4_s4" and auto.preset.steps == 4
    assert s15.preset.name == "realsr_x4_s15" and s15.preset.steps == 15


# -- wrong files ----------------------------------------------------------------------------------


def test_wrong_files_give_plain_errors(comfy, tiny_cache):
    install_tiny(comfy.models_dir, tiny_cache)
    d = comfy.models_dir
    (d / "vae_renamed.safetensors").write_bytes((d / "autoencoder_vq_f4.safetensors").read_bytes())
    (d / "unet_renamed.safetensors").write_bytes((d / "resshift_realsrx4_s4_v3.safetensors").read_bytes())
    good = (d / "resshift_realsrx4_s4_v3.safetensors").read_bytes()
    (d / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    (d / "notes.pth").write_text("these are my notes, not weights")
    torch.save({"weight": torch.zeros(3)}, d / "other_model.pth")

    def model(name):
        return comfy.run("ResShiftModelLoader", model_name=name, preset="auto", dtype="auto")

    with pytest.raises(CheckpointError, match="Load ResShift VAE"):
        model("vae_renamed.safetensors")
    with pytest.raises(CheckpointError, match="Load ResShift Model"):
        comfy.run("ResShiftVAELoader", vae_name="unet_renamed.safetensors", dtype="auto")
    with pytest.raises(CheckpointError, match="Load ResShift VAE"):
        model("autoencoder_vq_f4.pth")  # a published VAE by name
    for name in ("truncated.safetensors", "notes.pth", "other_model.pth"):
        with pytest.raises(CheckpointError) as info:
            model(name)
        assert name in str(info.value) or "architecture" in str(info.value)
    assert not comfy.mm.current_loaded_models  # nothing was loaded on the way


def test_missing_published_checkpoint_offline_says_which_file_where(comfy):
    with pytest.raises(CheckpointError) as info:
        comfy.run("ResShiftModelLoader", model_name="resshift_bicsrx4_s4.pth", preset="auto", dtype="auto")
    msg = str(info.value)
    assert "resshift_bicsrx4_s4.pth" in msg and str(comfy.models_dir) in msg
    assert "https://github.com/zsyOAOA/ResShift/releases/download/v2.0/resshift_bicsrx4_s4.pth" in msg
    assert not any(comfy.models_dir.glob("*")) if comfy.models_dir.exists() else True


# -- download on first use ------------------------------------------------------------------------


@pytest.fixture
def served_checkpoint(tiny_cache):
    from fake_comfy import tiny_checkpoints

    payload = tiny_checkpoints(tiny_cache)["resshift_bicsrx4_s4"].read_bytes()
    with serving(payload) as base:
        yield base, payload


def test_published_checkpoint_is_fetched_on_first_use_with_a_progress_bar(comfy, served_checkpoint, monkeypatch):
    base, payload = served_checkpoint
    monkeypatch.delenv("RESSHIFT_OFFLINE")
    real_entries = registry.entries
    entry = served_entry("test_bicsr_download", f"{base}/test_bicsr_download", payload)
    monkeypatch.setattr(registry, "entries", lambda: [*real_entries(), entry])
    assert entry.file in comfy.nodes["ResShiftModelLoader"].INPUT_TYPES()["required"]["model_name"][0]
    (model,) = comfy.run("ResShiftModelLoader", model_name=entry.file, preset="auto", dtype="auto")
    assert (comfy.models_dir / entry.file).read_bytes() == payload
    assert sorted(p.name for p in comfy.models_dir.iterdir()) == [entry.file]
    assert model.preset.name == "bicsr_x4_s4"
    assert comfy.progress and comfy.progress[-1] == (len(payload), len(payload))

    # a corrupt download (wrong sha256) leaves nothing behind
    bad = registry.RegistryEntry(**{**entry.__dict__, "name": "bad_dl", "file": "bad_dl.pth", "sha256": "0" * 64})
    monkeypatch.setattr(registry, "entries", lambda: [*real_entries(), bad])
    with pytest.raises(CheckpointError, match="corrupt"):
        comfy.run("ResShiftModelLoader", model_name=bad.file, preset="auto", dtype="auto")
    assert sorted(p.name for p in comfy.models_dir.iterdir()) == [entry.file]

    # interrupting during the download (through the progress bar) removes the partial file
    again = registry.RegistryEntry(**{**entry.__dict__, "name": "cancel_dl", "file": "cancel_dl.pth"})
    monkeypatch.setattr(registry, "entries", lambda: [*real_entries(), again])
    comfy.progress.clear()
    comfy.interrupt_at = 1
    with pytest.raises(comfy.mm.InterruptProcessingException):
        comfy.run("ResShiftModelLoader", model_name=again.file, preset="auto", dtype="auto")
    comfy.interrupt_at = None
    assert sorted(p.name for p in comfy.models_dir.iterdir()) == [entry.file]


def test_out_of_memory_in_a_sampling_step_retries_that_step_with_smaller_tiles(comfy, realsr):
    model, vae = realsr
    (latent,) = comfy.run("ResShiftEncode", model=model, image=torch.rand(1, 32, 32, 3), vae=vae)
    reference = comfy.run("ResShiftSampler", model=model, latent=latent, seed=5)[0].samples
    net = model.loaded.model
    real_forward = net.forward
    calls = []

    def forward(x, t, *args, **kwargs):
        calls.append(tuple(x.shape[-2:]))
        if len(calls) == 2 and x.shape[-1] > 16:  # the second step runs out of memory once
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return real_forward(x, t, *args, **kwargs)

    comfy.progress.clear()
    comfy.mm.calls.clear()
    net.forward = forward
    try:
        (out,) = comfy.run("ResShiftSampler", model=model, latent=latent, seed=5, tile_size=32, tile_overlap=8)
    finally:
        del net.forward
    assert out.samples.shape == reference.shape and torch.isfinite(out.samples).all()
    assert calls[0] == (32, 32) and calls[1] == (32, 32) and max(calls[2]) < 32  # smaller tiles from then on
    assert comfy.progress == [(1, 4), (2, 4), (3, 4), (4, 4)]  # the chain went on; it did not restart
    assert "soft_empty_cache" in [name for name, _ in comfy.mm.calls]


def test_pyproject_has_registry_fields_and_no_torch():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the tomli backport (a dependency there)
        import tomli as tomllib

    from fake_comfy import REPO

    with open(REPO / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)
    comfy_table = project["tool"]["comfy"]
    name = project["project"]["name"]  # the registry's node id rules
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,98}", name) and "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["project"]["version"])
    assert {"PublisherId", "DisplayName", "Icon"} <= set(comfy_table) and comfy_table["PublisherId"]
    assert not any(dep.lower().startswith("torch") for dep in project["project"]["dependencies"])
    for dep in ("safetensors", "einops", "numpy", "huggingface_hub", "pillow", "tqdm"):
        assert any(d.lower().startswith(dep) for d in project["project"]["dependencies"]), dep

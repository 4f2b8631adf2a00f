"""Load ResShift Model / Load ResShift VAE."""

from __future__ import annotations

import os

from resshift_core import registry

from . import files, runtime

DTYPE_CHOICES = ["auto", "fp32", "fp16", "bf16"]
# Optional, so that saved workflows and API prompts from before it still load (off).
COMPILE_INPUT = (
    "BOOLEAN",
    {
        "default": False,
        "tooltip": "Run the network through torch.compile (needs a C++ compiler on the CPU, Triton on a GPU). "
        "The first image pays a one-time compile of minutes; later images of any size reuse it.",
    },
)


def _parameters_hint(path, name: str) -> int:
    entry = registry.find(name)
    if entry is not None and entry.parameter_count:
        return int(entry.parameter_count)
    return os.path.getsize(path) // 4


class ResShiftModelLoader:
    DESCRIPTION = (
        "Loads a ResShift UNet from models/resshift (or fetches a published one there on first use). "
        "Its architecture is read from the weights and its diffusion preset (task, scale, steps) is "
        "detected; both are shown in the console."
    )
    CATEGORY = "ResShift"
    RETURN_TYPES = ("RESSHIFT_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The ResShift network with its diffusion preset, for ResShift Encode/Sampler/Upscale.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (
                    files.choices("unet"),
                    {
                        "tooltip": "A checkpoint in models/resshift, or a published one by file name: "
                        "those not on disk yet are downloaded there when first run.",
                    },
                ),
                "preset": (
                    ["auto", *registry.preset_names()],
                    {
                        "default": "auto",
                        "tooltip": "Diffusion settings (task, scale factor, steps, noise schedule). 'auto' "
                        "takes them from the file's metadata, the published model's name or its "
                        "layout; choose one for a file that is not recognised (e.g. the 15-step "
                        "v1/v2 real-world models renamed).",
                    },
                ),
                "dtype": (
                    DTYPE_CHOICES,
                    {
                        "default": "auto",
                        "tooltip": "Weight and compute precision. 'auto' follows ComfyUI (bf16 on GPUs that "
                        "run it well, else fp32; --fp16-unet/--bf16-unet/--fp32-unet apply).",
                    },
                ),
            },
            "optional": {"compile": COMPILE_INPUT},
        }

    def load(self, model_name, preset="auto", dtype="auto", compile=None):
        path = files.resolve(model_name, "unet")
        handle = runtime.load_network(
            path,
            "unet",
            dtype,
            None if preset == "auto" else preset,
            model_name,
            _parameters_hint(path, model_name),
            compile=bool(compile),
        )
        p = handle.preset
        runtime.host.log.info(
            "ResShift: %s: %s x%d, %d steps (preset %s from %s), %s",
            model_name,
            p.task,
            p.sf,
            p.steps,
            p.name,
            handle.loaded.preset_source,
            str(handle.dtype).replace("torch.", ""),
        )
        return (handle,)


class ResShiftVAELoader:
    DESCRIPTION = (
        "Loads a ResShift VQGAN autoencoder from models/resshift (or fetches a published one there on "
        "first use): autoencoder_vq_f4 for the super-resolution and ImageNet inpainting models, "
        "celeba256_vq_f4_dim3_face for face inpainting, ffhq512_vq_f8_dim8_face for face restoration."
    )
    CATEGORY = "ResShift"
    RETURN_TYPES = ("RESSHIFT_VAE",)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The VQGAN that encodes images into the model's latent space and decodes them back.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae_name": (
                    files.choices("autoencoder"),
                    {
                        "tooltip": "A VQGAN checkpoint in models/resshift, or a published one by file name: "
                        "those not on disk yet are downloaded there when first run.",
                    },
                ),
                "dtype": (
                    DTYPE_CHOICES,
                    {
                        "default": "auto",
                        "tooltip": "Weight and compute precision. 'auto' follows ComfyUI's VAE setting "
                        "(fp32 unless --fp16-vae/--bf16-vae is given).",
                    },
                ),
            },
            "optional": {"compile": COMPILE_INPUT},
        }

    def load(self, vae_name, dtype="auto", compile=None):
        path = files.resolve(vae_name, "autoencoder")
        handle = runtime.load_network(
            path, "autoencoder", dtype, None, vae_name, _parameters_hint(path, vae_name), compile=bool(compile)
        )
        cfg = handle.config
        runtime.host.log.info(
            "ResShift: %s: VQGAN f%d, %d-channel latent, %s",
            vae_name,
            cfg.downsample_factor,
            cfg.latent_channels,
            str(handle.dtype).replace("torch.", ""),
        )
        return (handle,)

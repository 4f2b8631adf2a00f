"""ResShift Encode / Sampler / Decode, and the whole chain in one node (ResShift Upscale)."""

from __future__ import annotations

from resshift_core.colorfix import METHODS
from resshift_core.request_checks import resolve_steps

from . import runtime

MAX_SEED = 0xFFFFFFFFFFFFFFFF
MAX_TILE = 16384

MODEL = ("RESSHIFT_MODEL", {"tooltip": "From Load ResShift Model."})
VAE = (
    "RESSHIFT_VAE",
    {
        "tooltip": "From Load ResShift VAE (the VQGAN paired with the model). Leave it "
        "unconnected only for pixel-space models."
    },
)
LATENT = ("RESSHIFT_LATENT", {"tooltip": "A ResShift latent from ResShift Encode (or ResShift Sampler)."})
IMAGE = ("IMAGE", {"tooltip": "The low-quality image(s) to restore; every image of a batch is restored on its own."})
MASK = (
    "MASK",
    {
        "tooltip": "Inpainting models only: white (1) marks the area to fill in. It is resized to the "
        "image and thresholded at 0.5; one mask for the batch or one per image."
    },
)
SEED = (
    "INT",
    {
        "default": 0,
        "min": 0,
        "max": MAX_SEED,
        "control_after_generate": True,
        "tooltip": "Noise seed. Image i of a batch uses seed + i, so it comes out as it would alone.",
    },
)
STEPS = (
    "INT",
    {
        "default": 0,
        "min": 0,
        "max": 1000,
        "tooltip": "Sampling steps; 0 = the model's default (the steps it was trained with, 4 or 15, unless "
        "its preset says fewer). Fewer "
        "steps respace the schedule.",
    },
)
TILE = (
    "INT",
    {
        "default": 0,
        "min": 0,
        "max": MAX_TILE,
        "step": 8,
        "tooltip": "UNet tile side in input-image pixels; 0 = automatic (by free memory). Large "
        "images are processed in overlapping tiles blended at every step.",
    },
)
OVERLAP = (
    "INT",
    {
        "default": 0,
        "min": 0,
        "max": 1024,
        "step": 1,
        "tooltip": "Overlap between UNet tiles in input-image pixels; 0 = automatic.",
    },
)
VAE_TILE = (
    "INT",
    {
        "default": 0,
        "min": 0,
        "max": MAX_TILE,
        "step": 8,
        "tooltip": "VQGAN tile side in input-image pixels; 0 = automatic. Smaller tiles use less memory.",
    },
)
COLOR_FIX = (
    list(METHODS),
    {
        "default": "none",
        "tooltip": "Colour correction against the input: 'wavelet' keeps the result's "
        "detail on the input's colours, 'adain' matches each channel's mean "
        "and contrast to the input; 'none' leaves the result as sampled.",
    },
)


class ResShiftEncode:
    DESCRIPTION = (
        "Prepares images for ResShift: pads them to the model's size multiple and encodes the "
        "bicubic upsampling into the VQGAN latent the sampler starts from."
    )
    CATEGORY = "ResShift"
    RETURN_TYPES = ("RESSHIFT_LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The encoded condition with its padding, scale factor and original size (and the mask).",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"model": MODEL, "image": IMAGE, "vae_tile_size": VAE_TILE},
            "optional": {"vae": VAE, "mask": MASK},
        }

    def encode(self, model, image, vae_tile_size=0, vae=None, mask=None):
        return (runtime.encode(model, vae, image, mask, vae_tile_size),)


class ResShiftSampler:
    DESCRIPTION = (
        "Runs the residual-shifting reverse chain from the encoded image: a few steps, each image "
        "of a batch with its own seed. Cancel with ComfyUI's interrupt."
    )
    CATEGORY = "ResShift"
    RETURN_TYPES = ("RESSHIFT_LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The restored latent, for ResShift Decode.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": MODEL,
                "latent": LATENT,
                "seed": SEED,
                "steps": STEPS,
                "tile_size": TILE,
                "tile_overlap": OVERLAP,
            }
        }

    def sample(self, model, latent, seed, steps=0, tile_size=0, tile_overlap=0):
        total = resolve_steps(model.preset, steps)
        return (
            runtime.sample(model, latent, seed, steps, tile_size, tile_overlap, progress=runtime.step_progress(total)),
        )


class ResShiftDecode:
    DESCRIPTION = "Decodes a ResShift latent into images at exactly the model's scale times the input size."
    CATEGORY = "ResShift"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The restored images (for inpainting, the known pixels are the input's).",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"latent": LATENT, "vae_tile_size": VAE_TILE, "color_fix": COLOR_FIX},
            "optional": {"vae": VAE},
        }

    def decode(self, latent, vae_tile_size=0, color_fix="none", vae=None):
        return (runtime.decode(vae, latent, vae_tile_size, color_fix),)


class ResShiftUpscale:
    DESCRIPTION = (
        "The whole ResShift chain in one node: encode, sample, decode. Same result as the three "
        "nodes with the same settings."
    )
    CATEGORY = "ResShift"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The restored images, at the model's scale times the input size.",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": MODEL,
                "image": IMAGE,
                "seed": SEED,
                "steps": STEPS,
                "tile_size": TILE,
                "tile_overlap": OVERLAP,
                "vae_tile_size": VAE_TILE,
                "color_fix": COLOR_FIX,
            },
            "optional": {"vae": VAE, "mask": MASK},
        }

    def upscale(
        self,
        model,
        image,
        seed,
        steps=0,
        tile_size=0,
        tile_overlap=0,
        vae_tile_size=0,
        color_fix="none",
        vae=None,
        mask=None,
    ):
        return (
            runtime.upscale(model, vae, image, seed, steps, tile_size, tile_overlap, vae_tile_size, color_fix, mask),
        )

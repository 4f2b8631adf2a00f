"""Fake comfy.cli_args: the two preview settings the pack reads (ComfyUI v0.3.64 names and defaults)."""

import enum
from types import SimpleNamespace


class LatentPreviewMethod(enum.Enum):
    NoPreviews = "none"
    Auto = "auto"
    Latent2RGB = "latent2rgb"
    TAESD = "taesd"


args = SimpleNamespace(preview_method=LatentPreviewMethod.NoPreviews, preview_size=512)

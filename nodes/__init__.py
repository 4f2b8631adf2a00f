"""ComfyUI nodes for ResShift, thin over resshift_core (classic node API)."""

from .color import ResShiftColorFix
from .loaders import ResShiftModelLoader, ResShiftVAELoader
from .sampling import ResShiftDecode, ResShiftEncode, ResShiftSampler, ResShiftUpscale

NODE_CLASS_MAPPINGS = {
    "ResShiftModelLoader": ResShiftModelLoader,
    "ResShiftVAELoader": ResShiftVAELoader,
    "ResShiftEncode": ResShiftEncode,
    "ResShiftSampler": ResShiftSampler,
    "ResShiftDecode": ResShiftDecode,
    "ResShiftUpscale": ResShiftUpscale,
    "ResShiftColorFix": ResShiftColorFix,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ResShiftModelLoader": "Load ResShift Model",
    "ResShiftVAELoader": "Load ResShift VAE",
    "ResShiftEncode": "ResShift Encode",
    "ResShiftSampler": "ResShift Sampler",
    "ResShiftDecode": "ResShift Decode",
    "ResShiftUpscale": "ResShift Upscale",
    "ResShiftColorFix": "ResShift Color Fix",
}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

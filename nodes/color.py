"""ResShift Color Fix: a thin node over resshift_core.colorfix, for any restored image."""

from __future__ import annotations

from resshift_core.colorfix import METHODS, color_fix

from . import runtime


class ResShiftColorFix:
    DESCRIPTION = (
        "Corrects the colours of a restored or upscaled image against its input (resized "
        "bicubically to the result's size), as StableSR/SUPIR-style upscalers do."
    )
    CATEGORY = "ResShift"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The image with the reference's colours and its own detail.",)
    FUNCTION = "fix"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The restored (e.g. upscaled) images."}),
                "reference": (
                    "IMAGE",
                    {
                        "tooltip": "The images they were made from (any size): their colours "
                        "are kept. One for the batch or one per image."
                    },
                ),
                "method": (
                    list(METHODS),
                    {
                        "default": "wavelet",
                        "tooltip": "'wavelet': the image's high frequencies on the reference's low frequencies; "
                        "'adain': match each channel's mean and standard deviation; 'none': unchanged.",
                    },
                ),
            }
        }

    def fix(self, image, reference, method="wavelet"):
        if method == "none":
            return (image,)
        out = color_fix(runtime.image_to_nchw(image), runtime.image_to_nchw(reference), method)
        return (runtime.nchw_to_image(out),)

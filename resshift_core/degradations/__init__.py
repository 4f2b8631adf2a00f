"""On-the-fly, batched, seeded training degradations (pure torch, any device).

* :func:`degrade` -- RealESRGAN-style second-order degradation (real-world SR) or bicubic mode;
  :class:`DegradationConfig` holds the published hyper-parameters.
* :func:`sample_masks` -- inpainting masks (1 = hole), :class:`MaskConfig`.
* :func:`degrade_face` -- blind face restoration degradation, :class:`FaceDegradationConfig`.

All randomness comes from the ``torch.Generator`` passed in.
"""

from .face import FaceDegradationConfig, degrade_face, degrade_face_with_params, sample_face_params
from .jpeg import jpeg_compress, quality_to_factor
from .kernels import (
    KERNEL_TYPES,
    BlurKernelConfig,
    bivariate_gaussian,
    bivariate_generalized_gaussian,
    bivariate_plateau,
    circular_lowpass_kernel,
    filter2d,
    sample_blur_kernels,
    sample_final_sinc,
    second_order_kernel_config,
    usm_sharp,
)
from .masks import MASK_KINDS, MaskConfig, apply_mask, sample_masks, sample_masks_with_kinds
from .noise import add_gaussian_noise, add_poisson_noise, random_add_gaussian_noise, random_add_poisson_noise
from .pipeline import (
    DegradationConfig,
    DegradationParams,
    apply_degradation,
    degrade,
    degrade_pair,
    degrade_with_params,
    sample_params,
)
from .resize import bicubic_downsample, imresize_matlab, interpolate

__all__ = [
    "KERNEL_TYPES",
    "MASK_KINDS",
    "BlurKernelConfig",
    "DegradationConfig",
    "DegradationParams",
    "FaceDegradationConfig",
    "MaskConfig",
    "add_gaussian_noise",
    "add_poisson_noise",
    "apply_degradation",
    "apply_mask",
    "bicubic_downsample",
    "bivariate_gaussian",
    "bivariate_generalized_gaussian",
    "bivariate_plateau",
    "circular_lowpass_kernel",
    "degrade",
    "degrade_face",
    "degrade_face_with_params",
    "degrade_pair",
    "degrade_with_params",
    "filter2d",
    "imresize_matlab",
    "interpolate",
    "jpeg_compress",
    "quality_to_factor",
    "random_add_gaussian_noise",
    "random_add_poisson_noise",
    "sample_blur_kernels",
    "sample_face_params",
    "sample_final_sinc",
    "sample_masks",
    "sample_masks_with_kinds",
    "sample_params",
    "second_order_kernel_config",
    "usm_sharp",
]

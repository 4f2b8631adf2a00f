"""Training ResShift models: `python -m resshift_core.train CONFIG.toml` (see configs/)."""

from .config import TrainConfig
from .loop import Trainer, train
from .metrics import psnr_y, ssim_y

__all__ = ["TrainConfig", "Trainer", "train", "psnr_y", "ssim_y"]

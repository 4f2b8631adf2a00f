"""Training ResShift models: `python -m resshift_core.train CONFIG.toml` (see configs/)."""

from .config import TrainConfig
from .errors import ConfigError
from .loop import Trainer, train
from .metrics import psnr_y, ssim_y

__all__ = ["ConfigError", "TrainConfig", "Trainer", "psnr_y", "ssim_y", "train"]

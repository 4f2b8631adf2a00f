"""Evaluate a UNet on Val_SR (PSNR/SSIM, Y channel) against bicubic: see resshift_core/train/evaluate.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resshift_core.train.evaluate import main

if __name__ == "__main__":
    sys.exit(main())

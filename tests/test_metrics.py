"""PSNR-Y and SSIM-Y (the numbers behind the model card) against scikit-image on Val_SR images.

The published evaluation (BasicSR): Y of ITU-R BT.601 on the 8-bit scale ([16, 235]), PSNR
with peak 255, SSIM with an 11x11 Gaussian window of sigma 1.5, K1 0.01, K2 0.03, population
(co)variances, averaged over the positions where the window fits. scikit-image's
`structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)` is that definition (its 11-tap window is truncate 3.5 x sigma 1.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resshift_core.train.metrics import psnr_y, ssim_y

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image (the test extras) is not installed")
skimage_color = pytest.importorskip("skimage.color")

VAL_SR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "Val_SR"
IMAGES = 3  # of the 32: enough to pin the formulas, cheap to score


def _val_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(bicubic x4 of the LR, ground truth) as uint8 HW3 arrays: realistic errors (~24 dB)."""
    if not (VAL_SR / "gt").is_dir() or not (VAL_SR / "lq").is_dir():
        pytest.skip(f"Val_SR is not at {VAL_SR} (needs its gt/ and lq/ folders)")
    pairs = []
    for gt_path in sorted((VAL_SR / "gt").glob("*.png"))[:IMAGES]:
        gt = Image.open(gt_path).convert("RGB")
        lq = Image.open(VAL_SR / "lq" / gt_path.name).convert("RGB")
        pairs.append((np.asarray(lq.resize(gt.size, Image.Resampling.BICUBIC)), np.asarray(gt)))
    return pairs


def _tensor(img: np.ndarray) -> torch.Tensor:
    """1x3xHxW float64 in [0, 1]: exact multiples of 1/255, so 8-bit quantising changes nothing."""
    return torch.from_numpy(img.astype(np.float64) / 255).permute(2, 0, 1)[None]


def _y(img: np.ndarray, crop: int) -> np.ndarray:
    y = skimage_color.rgb2ycbcr(img)[..., 0]  # BT.601, [16, 235]
    return y[crop:-crop, crop:-crop] if crop else y


@pytest.fixture(scope="module")
def pairs():
    return _val_pairs()


@pytest.mark.parametrize("crop_border", [0, 4])
def test_psnr_y_is_the_published_definition(pairs, crop_border):
    for out, gt in pairs:
        ours = float(psnr_y(_tensor(out), _tensor(gt), crop_border))
        reference = skimage_metrics.peak_signal_noise_ratio(_y(gt, crop_border), _y(out, crop_border), data_range=255)
        assert 15 < reference < 40
        assert ours == pytest.approx(reference, abs=1e-9)  # the two agree to ~1e-14; a peak of 256: +0.03 dB


@pytest.mark.parametrize("crop_border", [0, 4])
def test_ssim_y_is_the_published_definition(pairs, crop_border):
    for out, gt in pairs:
        ours = float(ssim_y(_tensor(out), _tensor(gt), crop_border))
        reference = skimage_metrics.structural_similarity(
            _y(gt, crop_border),
            _y(out, crop_border),
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert 0.3 < reference < 0.99
        # the two agree to ~1e-14; K1 0.0101 instead of 0.01 moves SSIM by ~2e-9
        assert ours == pytest.approx(reference, abs=1e-12)


def test_a_batch_is_scored_image_by_image(pairs):
    outs = torch.cat([_tensor(out) for out, _ in pairs])
    gts = torch.cat([_tensor(gt) for _, gt in pairs])
    alone = [float(psnr_y(_tensor(out), _tensor(gt))) for out, gt in pairs]
    np.testing.assert_allclose(psnr_y(outs, gts).numpy(), alone, rtol=1e-12)
    alone = [float(ssim_y(_tensor(out), _tensor(gt))) for out, gt in pairs]
    np.testing.assert_allclose(ssim_y(outs, gts).numpy(), alone, rtol=1e-12)


def test_identical_images_and_small_noise():
    a = torch.rand(2, 3, 32, 32)
    assert torch.isfinite(psnr_y(a, a)).all()  # the MSE is clamped: finite
    assert torch.allclose(ssim_y(a, a), torch.ones(2, dtype=torch.float64))
    b = (a + 0.05 * torch.randn_like(a)).clamp(0, 1)
    assert 15 < float(psnr_y(a, b).mean()) < 40
    assert float(ssim_y(a, b).mean()) < 1

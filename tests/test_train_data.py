"""Training crops: the published rescale_gt crop shows a whole scene, our rescale_size keeps its scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from resshift_core.train.data import CropDataset


def _ramp_image(folder: Path, h: int = 96, w: int = 144) -> Path:
    """Red rises left to right over the whole width, green top to bottom: a crop's value range
    tells how much of the scene it shows."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w).round()[None, :]
    img[..., 1] = np.linspace(0, 255, h).round()[:, None]
    Image.fromarray(img).save(folder / "ramp.png")
    return folder


def _span(crop: torch.Tensor, channel: int) -> float:
    c = crop[channel].float()
    return float(c.max() - c.min())


@pytest.fixture
def ramp_dir(tmp_path) -> Path:
    return _ramp_image(tmp_path / "hr")


def test_rescale_gt_crops_the_whole_short_side_and_resizes_it(ramp_dir):
    plain = CropDataset(str(ramp_dir), 32, use_hflip=False, rescale_gt=False)
    rescaled = CropDataset(str(ramp_dir), 32, use_hflip=False, rescale_gt=True)
    for step in range(4):
        p, _ = plain.batch(0, step, 1)
        r, _ = rescaled.batch(0, step, 1)
        assert p.shape == r.shape == (1, 3, 32, 32) and r.dtype == torch.uint8
        # A plain crop sees 32 of the 96 rows; the published crop sees all 96 (the short side).
        assert _span(p[0], 1) < 100
        assert _span(r[0], 1) > 230
        # ... and a 96-wide square of the 144 columns: two thirds of the red ramp.
        assert 130 < _span(r[0], 0) < 190


def test_rescale_gt_equals_an_area_resize_of_a_square(ramp_dir):
    """rescale_size = gt_size is the published behaviour: the square is area-resized to gt_size."""
    hr = torch.from_numpy(np.array(Image.open(ramp_dir / "ramp.png"))).permute(2, 0, 1)
    data = CropDataset(str(ramp_dir), 32, use_hflip=False, rescale_gt=True)
    crop, _ = data.batch(0, 0, 1)
    candidates = [
        F.interpolate(hr[None, :, :, x : x + 96].float(), size=(32, 32), mode="area")[0]
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
        for x in range(144 - 96 + 1)
    ]
    assert any(torch.equal(crop[0], c) for c in candidates)


def test_rescale_size_crops_from_a_larger_resize(ramp_dir):
    data = CropDataset(str(ramp_dir), 32, use_hflip=False, rescale_gt=True, rescale_size=64)
    crop, _ = data.batch(0, 0, 1)
    assert crop.shape == (1, 3, 32, 32)
    # Half of a 64-pixel resize of the 96-row square: about half of the green ramp.
    assert 100 < _span(crop[0], 1) < 150


def test_rescale_size_below_gt_size_is_refused(ramp_dir):
    with pytest.raises(ValueError, match="rescale_size 16 is smaller than gt_size 32"):
        CropDataset(str(ramp_dir), 32, rescale_gt=True, rescale_size=16)


def test_paired_data_is_never_rescaled(tmp_path):
    hr_dir = _ramp_image(tmp_path / "hr", 96, 144)
    lq_dir = tmp_path / "lq"
    lq_dir.mkdir()
    Image.open(hr_dir / "ramp.png").resize((36, 24), Image.Resampling.BICUBIC).save(lq_dir / "ramp.png")
    data = CropDataset(str(hr_dir), 32, lq_dir=str(lq_dir), use_hflip=False, rescale_gt=True)
    hr, lq = data.batch(0, 0, 1)
    assert hr.shape == (1, 3, 32, 32) and lq.shape == (1, 3, 8, 8)
    assert _span(hr[0], 1) < 100  # a plain crop, so it stays aligned with its LR partner

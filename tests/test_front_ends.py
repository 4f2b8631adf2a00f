"""The command line and the ComfyUI nodes are adapters over one request API: for the same image,
mask, model and seed they write the same pixels, for every task."""

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import one_torch_thread
from fake_comfy import install_file
from resshift_core.cli import main
from resshift_core.tiny import write_tiny_checkpoints

SEED = 7


@pytest.fixture(autouse=True)
def one_thread():
    with one_torch_thread():
        yield


def _write_inputs(folder, with_mask: bool):
    rng = np.random.default_rng(0)
    image = (rng.random((14, 10, 3)) * 255).astype(np.uint8)  # odd sizes: padded and cropped back
    Image.fromarray(image).save(folder / "in.png")
    if not with_mask:
        return image, None
    # a soft mask at another size, with JPEG-like noise around 0 and 255 (as the published test masks)
    mask = np.zeros((7, 5), np.float32)
    mask[2:5, 1:4] = 1
    mask = np.clip(mask * 255 + rng.normal(0, 6, mask.shape), 0, 255).astype(np.uint8)
    Image.fromarray(mask, "L").save(folder / "mask.png")
    return image, mask


def _quantized(nodes_output: torch.Tensor) -> np.ndarray:
    """A node's IMAGE as the command line writes an 8-bit PNG (clamped, rounded to nearest)."""
    return np.rint(np.clip(nodes_output[0].numpy(), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("task", "fix"),
    [
        ("realsr", "none"),
        ("bicsr", "wavelet"),
        ("inpaint", "adain"),
        ("faceir", "none"),
        ("pixel_fold", "none"),
        ("sinsr", "none"),
        ("rsd", "wavelet"),
        ("distilled", "none"),
        ("distilled_add", "none"),
        ("distilled_x2", "adain"),
    ],
)
def test_command_line_and_nodes_write_the_same_pixels(comfy, tmp_path, task, fix):
    unet, vae = write_tiny_checkpoints(tmp_path / "models", task, seed=3)
    image, mask = _write_inputs(tmp_path, with_mask=task == "inpaint")
    args = [
        "upscale",
        str(tmp_path / "in.png"),
        "-o",
        str(tmp_path / "cli.png"),
        "--model",
        str(unet),
        "--seed",
        str(SEED),
        "--color-fix",
        fix,
        "--no-progress",
        "--dtype",
        "fp32",  # the nodes below load in fp32: compare like with like (auto may pick bf16)
    ]
    if vae is not None:
        args += ["--vae", str(vae)]
    if mask is not None:
        args += ["--mask", str(tmp_path / "mask.png")]
    assert main(args) == 0
    from_cli = np.asarray(Image.open(tmp_path / "cli.png"))

    (model,) = comfy.run(
        "ResShiftModelLoader", model_name=install_file(comfy.models_dir, unet).name, preset="auto", dtype="fp32"
    )
    node_vae = None
    if vae is not None:
        (node_vae,) = comfy.run("ResShiftVAELoader", vae_name=install_file(comfy.models_dir, vae).name, dtype="fp32")
    node_mask = None if mask is None else torch.from_numpy(mask.astype(np.float32) / 255)[None]
    (out,) = comfy.run(
        "ResShiftUpscale",
        model=model,
        image=torch.from_numpy(image.astype(np.float32) / 255)[None],
        seed=SEED,
        steps=0,
        tile_size=0,
        tile_overlap=0,
        vae_tile_size=0,
        color_fix=fix,
        vae=node_vae,
        mask=node_mask,
    )
    from_nodes = _quantized(out)
    assert from_nodes.shape == from_cli.shape
    np.testing.assert_array_equal(from_nodes, from_cli)

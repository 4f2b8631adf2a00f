"""Print the seam figures that tests/test_seams.py asserts on (the trained model in weights/).

python scripts/seam_report.py
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from resshift_core import registry  # noqa: E402
from resshift_core.checkpoints.loading import load_unet  # noqa: E402
from resshift_core.pipeline import ResShiftPipeline  # noqa: E402
from test_seams import HARD_TILE, TILE, TilingConfig, photo_crop, psnr, seam_ratio, smooth_image  # noqa: E402


def main() -> None:
    entry = next(e for e in registry.entries() if e.shipped and e.part == "unet")
    pipe = ResShiftPipeline(load_unet(entry.local_path), None)
    overlap, multiple, steps = pipe.tiling().overlap, pipe.unet.model.size_multiple, pipe.preset.steps
    print(f"{entry.name}: {steps} steps, tile {TILE} px, overlap {overlap} px (default), abutting tiles {HARD_TILE} px")
    for kind, image in (("smooth ramp", smooth_image(160, 160)), ("RealSet65 0014 crop", photo_crop())):
        untiled = pipe.restore(image, seeds=[0], steps=steps)
        other = pipe.restore(image, seeds=[1], steps=steps)
        tiled = pipe.restore(image, seeds=[0], steps=steps, tiling=TilingConfig(tile=TILE, overlap=overlap))
        hard = pipe.restore(image, seeds=[0], steps=steps, tiling=TilingConfig(tile=HARD_TILE, overlap=0))
        print(
            f"{kind}: seam ratio tiled {seam_ratio(tiled, TILE, overlap, multiple):.3f}, "
            f"same lines untiled {seam_ratio(untiled, TILE, overlap, multiple):.3f}, "
            f"abutting tiles {seam_ratio(hard, HARD_TILE, 0, multiple):.3f}; "
            f"PSNR tiled vs untiled {psnr(tiled, untiled):.1f} dB, seed 1 vs seed 0 {psnr(other, untiled):.1f} dB"
        )


if __name__ == "__main__":
    main()

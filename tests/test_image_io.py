import io
import os
import struct
import sys
import warnings
import zlib
from typing import Any

import imagecodecs
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from resshift_core.errors import ImageError
from resshift_core.image_io import LoadedImage, list_images, load_image, save_image
from resshift_core.image_io.png_stream import PngStream

RNG = np.random.default_rng(1234)
FAKE_RGB_ICC = b"\0" * 16 + b"RGB " + bytes(range(108)) + b"fake rgb profile"
FAKE_GRAY_ICC = b"\0" * 16 + b"GRAY" + bytes(range(108)) + b"fake gray profile"


def rand(shape, dtype):
    return RNG.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def chw(arr: np.ndarray, maxval: int) -> torch.Tensor:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.astype(np.float32) / maxval).permute(2, 0, 1)


def alpha_of(img: LoadedImage) -> torch.Tensor:
    assert img.alpha is not None, "the image has no transparency"
    return img.alpha


def levels(t: torch.Tensor, maxval: int) -> np.ndarray:
    return np.rint(t.numpy() * maxval).astype(np.int64)


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_file(width, height, depth, ctype, scanlines: bytes, chunks=(), interlace=False) -> bytes:
    """A PNG from its parts, written here so that the reader is tested against files it did not make."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, int(interlace))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + b"".join(chunk(k, b) for k, b in chunks)
        + chunk(b"IDAT", zlib.compress(scanlines))
        + chunk(b"IEND", b"")
    )


def png_bytes(pixels: np.ndarray, chunks=(), interlace=False) -> bytes:
    """PNG of HxW or HxWxC (C = 1..4) uint8/uint16 pixels, every scanline unfiltered (filter type 0)."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    samples = pixels.astype(">u2" if pixels.dtype == np.uint16 else np.uint8)
    lines = []
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        sub = samples[y0::dy, x0::dx]
        if sub.size:  # Adam7 skips empty passes
            lines += [b"\0" + row.tobytes() for row in sub]
    return png_file(w, h, 8 * pixels.dtype.itemsize, {1: 0, 2: 4, 3: 2, 4: 6}[c], b"".join(lines), chunks, interlace)


# ---------------------------------------------------------------- 16-bit PNG (imagecodecs)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_round_trip_is_exact_to_the_last_bit(tmp_path, channels):
    """Every one of the 65536 levels survives save_image then load_image, in each PNG colour type."""
    levels16 = RNG.permutation(65536).astype(np.uint16).reshape(256, 256)
    arr = np.stack([np.roll(levels16, 17 * k, axis=1) for k in range(channels)], axis=2)
    if channels in (2, 4):
        arr[0, 0, -1] = 0
    colour = torch.from_numpy(arr[:, :, : 1 if channels <= 2 else 3].astype(np.float64) / 65535).permute(2, 0, 1)
    alpha = torch.from_numpy(arr[:, :, -1:].astype(np.float64) / 65535).permute(2, 0, 1) if channels in (2, 4) else None
    out = tmp_path / "exact16.png"
    save_image(out, colour.float(), None if alpha is None else alpha.float(), bit_depth=16)
    np.testing.assert_array_equal(imagecodecs.png_decode(out.read_bytes()).reshape(arr.shape), arr)
    img = load_image(out)
    assert img.bit_depth == 16 and img.grayscale == (channels <= 2)
    np.testing.assert_array_equal(
        levels(img.rgb[: 1 if channels <= 2 else 3], 65535).transpose(1, 2, 0), arr[:, :, : 1 if channels <= 2 else 3]
    )
    if alpha is not None:
        np.testing.assert_array_equal(levels(alpha_of(img)[0], 65535), arr[:, :, -1])


def test_16bit_gray_agrees_with_pillow_both_ways(tmp_path):
    """Pillow holds 16-bit gray exactly (mode I;16): it can check our reader and our writer."""
    pixels = rand((23, 29), np.uint16)
    theirs = tmp_path / "theirs.png"
    Image.fromarray(pixels).save(theirs)
    loaded = load_image(theirs)
    assert loaded.bit_depth == 16 and loaded.grayscale and loaded.alpha is None
    np.testing.assert_array_equal(levels(loaded.rgb[0], 65535), pixels)
    ours = tmp_path / "ours.png"
    save_image(ours, loaded.rgb, bit_depth=16, grayscale=True)
    with Image.open(ours) as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), pixels)


def test_our_16bit_rgb_is_a_valid_png_for_pillow(tmp_path):
    """Pillow reads 16-bit RGB at 8 bits (high byte): our file must give exactly those."""
    pixels = rand((15, 16, 3), np.uint16)
    path = tmp_path / "rgb16.png"
    save_image(path, chw(pixels, 65535), bit_depth=16)
    with Image.open(path) as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), (pixels >> 8).astype(np.uint8))


# ---------------------------------------------------------------- load / save round trips


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_8bit_png_round_trip_is_exact(tmp_path, channels):
    arr = rand((12, 10, channels), np.uint8)
    if channels in (2, 4):
        arr[0, 0, -1] = 0  # make sure there is transparency
    src = tmp_path / "src.png"
    Image.fromarray(arr[:, :, 0] if channels == 1 else arr).save(src)
    img = load_image(src)
    assert isinstance(img, LoadedImage)
    assert img.rgb.dtype == torch.float32 and img.rgb.shape == (3, 12, 10)
    assert img.bit_depth == 8 and img.source_format == "PNG" and img.path == src
    assert img.grayscale == (channels <= 2)
    colour = arr[:, :, : 1 if channels <= 2 else 3]
    np.testing.assert_array_equal(levels(img.rgb, 255), np.broadcast_to(colour, (12, 10, 3)).transpose(2, 0, 1))
    if channels in (2, 4):
        assert alpha_of(img).shape == (1, 12, 10)
        np.testing.assert_array_equal(levels(alpha_of(img)[0], 255), arr[:, :, -1])
    else:
        assert img.alpha is None
    out = tmp_path / "out.png"
    save_image(out, img.rgb, img.alpha, bit_depth=8, grayscale=img.grayscale)
    with Image.open(out) as im:
        assert im.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
        np.testing.assert_array_equal(np.asarray(im).reshape(arr.shape), arr)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_round_trip_keeps_values_8bit_cannot_hold(tmp_path, channels):
    arr = rand((9, 14, channels), np.uint16)
    arr[0, 0, :] = 1000  # 1000/65535 is not a multiple of 257: lost in 8 bits
    arr[0, 1, :] = 1
    if channels in (2, 4):
        arr[1, 1, -1] = 0
    src = tmp_path / "src16.png"
    src.write_bytes(png_bytes(arr))
    img = load_image(src)
    assert img.bit_depth == 16 and img.grayscale == (channels <= 2) and img.source_format == "PNG"
    colour = arr[:, :, : 1 if channels <= 2 else 3]
    np.testing.assert_array_equal(levels(img.rgb, 65535), np.broadcast_to(colour, (9, 14, 3)).transpose(2, 0, 1))
    assert levels(img.rgb[0, 0, 0], 65535) == 1000
    if channels in (2, 4):
        np.testing.assert_array_equal(levels(alpha_of(img)[0], 65535), arr[:, :, -1])
    else:
        assert img.alpha is None
    out = tmp_path / "sub" / "dir" / "out16.png"  # parents are created
    save_image(out, img.rgb, img.alpha, bit_depth=16, grayscale=img.grayscale)
    data = out.read_bytes()
    assert data[24] == 16  # IHDR bit depth
    np.testing.assert_array_equal(imagecodecs.png_decode(data).reshape(arr.shape), arr)


def test_16bit_interlaced_png_loads(tmp_path):
    arr = rand((21, 18, 4), np.uint16)
    arr[..., 3] = 40000
    src = tmp_path / "adam7.png"
    src.write_bytes(png_bytes(arr, interlace=True))
    img = load_image(src)
    np.testing.assert_array_equal(levels(img.rgb, 65535), arr[:, :, :3].transpose(2, 0, 1))
    np.testing.assert_array_equal(levels(alpha_of(img)[0], 65535), arr[:, :, 3])


def test_16bit_colour_key_transparency(tmp_path):
    arr = rand((6, 7, 3), np.uint16)
    key = (1000, 2000, 3000)
    arr[2, 3] = key
    trns = struct.pack(">HHH", *key)
    src = tmp_path / "key.png"
    src.write_bytes(png_bytes(arr, chunks=[(b"tRNS", trns)]))
    img = load_image(src)
    expected = np.ones((6, 7))
    expected[2, 3] = 0
    np.testing.assert_array_equal(alpha_of(img)[0].numpy(), expected)


def test_rounding_and_clamping(tmp_path):
    k = np.arange(0, 255, dtype=np.float32)
    row = np.concatenate([(k + 0.4) / 255, (k + 0.6) / 255, [-0.5, 1.5, 0.0, 1.0]]).astype(np.float32)
    t = torch.from_numpy(row)[None, None].expand(3, 1, -1)
    save_image(tmp_path / "r.png", t)
    got = np.asarray(Image.open(tmp_path / "r.png"))[0, :, 0].astype(int)
    expected = np.concatenate([k, k + 1, [0, 255, 0, 255]]).astype(int)
    np.testing.assert_array_equal(got, expected)


def test_grayscale_save_writes_one_channel(tmp_path):
    g = torch.rand(1, 5, 6)
    save_image(tmp_path / "g.png", g.expand(3, -1, -1), grayscale=True)
    save_image(tmp_path / "g1.png", g)
    for name in ("g.png", "g1.png"):
        with Image.open(tmp_path / name) as im:
            assert im.mode == "L"
            np.testing.assert_array_equal(np.asarray(im), levels(g[0], 255))
    # not-quite-gray colour data asked to be gray: Rec.601 luma
    rgb = torch.zeros(3, 2, 2)
    rgb[0] = 1.0
    save_image(tmp_path / "luma.png", rgb, grayscale=True)
    assert np.asarray(Image.open(tmp_path / "luma.png"))[0, 0] == round(0.299 * 255)


def test_one_by_one_images(tmp_path):
    for arr, name in [(np.array([[[10, 20, 30]]], np.uint8), "a.png"), (np.array([[7]], np.uint8), "b.jpg")]:
        Image.fromarray(arr).save(tmp_path / name)
        img = load_image(tmp_path / name)
        assert img.rgb.shape == (3, 1, 1)
    tiny16 = tmp_path / "c.png"
    tiny16.write_bytes(png_bytes(np.array([[[1000, 2, 65535, 0]]], np.uint16)))
    img = load_image(tiny16)
    assert img.rgb.shape == (3, 1, 1) and alpha_of(img).item() == 0
    save_image(tmp_path / "d.png", img.rgb, img.alpha, bit_depth=16)
    assert load_image(tmp_path / "d.png").rgb.shape == (3, 1, 1)


# ---------------------------------------------------------------- modes and metadata


def test_palette_with_transparency_gives_alpha(tmp_path):
    pal_img = Image.new("P", (4, 3))
    pal_img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal_img.putdata([0, 1, 2, 1] * 3)
    pal_img.save(tmp_path / "p.png", transparency=1)
    img = load_image(tmp_path / "p.png")
    assert img.alpha is not None and not img.grayscale and img.bit_depth == 8
    np.testing.assert_array_equal(alpha_of(img)[0].numpy(), np.tile([1, 0, 1, 0], (3, 1)))
    np.testing.assert_array_equal(levels(img.rgb[:, 0, 0], 255), [255, 0, 0])
    # per-entry alpha (tRNS with several values)
    pal_img.save(tmp_path / "p2.png", transparency=bytes([255, 128, 0]))
    img = load_image(tmp_path / "p2.png")
    np.testing.assert_array_equal(levels(alpha_of(img)[0, 0], 255), [255, 128, 0, 128])
    # no transparency: no alpha
    pal_img.save(tmp_path / "p3.png")
    assert load_image(tmp_path / "p3.png").alpha is None


def test_gray_palette_and_gray_key_and_one_bit(tmp_path):
    gp = Image.new("P", (3, 2))
    gp.putpalette([v for g in range(256) for v in (g, g, g)])
    gp.putdata([0, 100, 255, 3, 4, 5])
    gp.save(tmp_path / "gp.png")
    assert load_image(tmp_path / "gp.png").grayscale
    key = Image.fromarray(np.array([[0, 10], [20, 10]], np.uint8))
    key.save(tmp_path / "key.png", transparency=10)
    img = load_image(tmp_path / "key.png")
    assert img.grayscale
    np.testing.assert_array_equal(alpha_of(img)[0].numpy(), [[1, 0], [1, 0]])
    Image.fromarray(np.array([[True, False]])).save(tmp_path / "bit.png")
    img = load_image(tmp_path / "bit.png")
    assert img.grayscale and img.alpha is None
    np.testing.assert_array_equal(img.rgb[:, 0].numpy(), [[1, 0]] * 3)


def test_opaque_alpha_channel_counts_as_no_transparency(tmp_path):
    arr = rand((4, 5, 4), np.uint8)
    arr[..., 3] = 255
    Image.fromarray(arr).save(tmp_path / "opaque.png")
    assert load_image(tmp_path / "opaque.png").alpha is None
    arr16 = rand((4, 5, 2), np.uint16)
    arr16[..., 1] = 65535
    (tmp_path / "opaque16.png").write_bytes(png_bytes(arr16))
    assert load_image(tmp_path / "opaque16.png").alpha is None


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32]
    rgb = np.stack([xx * 8, yy * 8, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    img = load_image(tmp_path / "cmyk.jpg")
    assert img.rgb.shape == (3, 32, 32) and img.icc_profile is None and not img.grayscale
    assert np.abs(levels(img.rgb, 255) - rgb.transpose(2, 0, 1)).mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    arr = rand((6, 10, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=100)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    img = load_image(path)
    assert img.rgb.shape[1:] == expected.shape[:2]
    if orientation >= 5:
        assert img.rgb.shape[1:] == (10, 6)
    np.testing.assert_array_equal(levels(img.rgb, 255), expected.transpose(2, 0, 1))


def test_exif_orientation_in_16bit_png(tmp_path):
    arr = rand((4, 6, 2), np.uint16)
    arr[0, 0, 1] = 0
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "o16.png"
    path.write_bytes(png_bytes(arr, chunks=[(b"eXIf", exif.tobytes())]))
    img = load_image(path)
    expected = np.rot90(arr, -1)
    assert img.rgb.shape == (3, 6, 4)
    np.testing.assert_array_equal(levels(img.rgb[0], 65535), expected[:, :, 0])
    np.testing.assert_array_equal(levels(alpha_of(img)[0], 65535), expected[:, :, 1])


def test_icc_profile_is_kept(tmp_path):
    arr = rand((5, 5, 3), np.uint8)
    Image.fromarray(arr).save(tmp_path / "icc.png", icc_profile=FAKE_RGB_ICC)
    img = load_image(tmp_path / "icc.png")
    assert img.icc_profile == FAKE_RGB_ICC
    for name, depth in [("o8.png", 8), ("o16.png", 16), ("o.jpg", 8), ("o.webp", 8)]:
        save_image(tmp_path / name, img.rgb, bit_depth=depth, icc_profile=img.icc_profile)
        assert load_image(tmp_path / name).icc_profile == FAKE_RGB_ICC, name
    # a colour profile does not go into a gray file (PNG forbids it); a gray one does
    save_image(tmp_path / "g.png", img.rgb, grayscale=True, icc_profile=FAKE_RGB_ICC)
    assert load_image(tmp_path / "g.png").icc_profile is None
    save_image(tmp_path / "g16.png", img.rgb, grayscale=True, bit_depth=16, icc_profile=FAKE_GRAY_ICC)
    assert load_image(tmp_path / "g16.png").icc_profile == FAKE_GRAY_ICC


def test_other_formats_load(tmp_path):
    arr = rand((8, 9, 3), np.uint8)
    for name in ("a.bmp", "a.tif", "a.webp"):
        kwargs: dict[str, Any] = {"lossless": True} if name.endswith("webp") else {}
        Image.fromarray(arr).save(tmp_path / name, **kwargs)
        img = load_image(tmp_path / name)
        np.testing.assert_array_equal(levels(img.rgb, 255), arr.transpose(2, 0, 1))
    g16 = rand((5, 6), np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.tif")
    img = load_image(tmp_path / "g16.tif")
    assert img.bit_depth == 16 and img.grayscale and img.source_format == "TIFF"
    np.testing.assert_array_equal(levels(img.rgb[1], 65535), g16)


def test_jpeg_and_webp_output(tmp_path):
    rgb = torch.rand(3, 16, 16)
    alpha = torch.rand(1, 16, 16)
    save_image(tmp_path / "o.jpg", rgb)
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    with pytest.raises(ImageError, match=r"transparency.*\.png"):
        save_image(tmp_path / "a.jpg", rgb, alpha)
    assert not (tmp_path / "a.jpg").exists()
    save_image(tmp_path / "a.webp", rgb, alpha)
    back = load_image(tmp_path / "a.webp")
    assert back.source_format == "WEBP" and back.alpha is not None
    assert (back.alpha - alpha).abs().max() < 0.01  # WebP alpha is lossless at the default alpha quality
    save_image(tmp_path / "noext", rgb, format="png")
    with Image.open(tmp_path / "noext") as im:
        assert im.format == "PNG"
    with pytest.raises(ImageError, match=r"only PNG"):
        save_image(tmp_path / "x.jpg", rgb, bit_depth=16)
    with pytest.raises(ImageError, match=r"\.png, \.jpg or \.webp"):
        save_image(tmp_path / "x.xyz", rgb)


# ---------------------------------------------------------------- errors


def test_missing_folder_and_empty_files(tmp_path):
    with pytest.raises(ImageError, match=r"not found.*nope.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match=r"is a folder"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.png.*empty"):
        load_image(tmp_path / "empty.png")


def test_random_bytes_are_not_an_image(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(RNG.integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match=r"noise.jpg.*not an image"):
        load_image(path)


@pytest.mark.parametrize("kind", ["png8", "png16", "jpeg", "webp"])
def test_truncated_files_raise_image_error(tmp_path, kind):
    yy, xx = np.mgrid[0:64, 0:64]
    arr = np.stack([xx * 4, yy * 4, (xx + yy) * 2], 2).astype(np.uint8)
    arr = arr + RNG.integers(0, 3, arr.shape, dtype=np.uint8)
    path = tmp_path / f"cut.{'png' if kind.startswith('png') else kind}"
    if kind == "png16":
        data = png_bytes(arr.astype(np.uint16) * 257)
    else:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format={"png8": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[kind])
        data = buf.getvalue()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageError, match=r"cut\.") as info:
        load_image(path)
    assert "re-download or re-export" in str(info.value) or "not an image" in str(info.value)


def test_corrupt_16bit_png(tmp_path):
    data = bytearray(png_bytes(rand((8, 8, 3), np.uint16)))
    data[60] ^= 0xFF  # inside the image data: checksum mismatch
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"bad.png is corrupt .*re-download or re-export"):
        load_image(tmp_path / "bad.png")
    body = b"\x07" + b"\0" * 6  # filter type 7 does not exist
    (tmp_path / "filt.png").write_bytes(png_file(1, 1, 16, 2, body))
    with pytest.raises(ImageError, match=r"filt.png is corrupt .*filter"):
        load_image(tmp_path / "filt.png")


def test_16bit_png_with_a_damaged_metadata_chunk_still_loads(tmp_path):
    """libpng skips an ancillary chunk whose checksum is wrong; the pixels still load, without it."""
    iccp = (b"iCCP", b"ICC profile\0\0" + zlib.compress(FAKE_RGB_ICC))
    arr = rand((3, 4, 3), np.uint16)
    good = png_bytes(arr, chunks=[iccp])
    (tmp_path / "good.png").write_bytes(good)
    assert load_image(tmp_path / "good.png").icc_profile == FAKE_RGB_ICC
    at = good.index(b"iCCP") + 10
    (tmp_path / "meta.png").write_bytes(good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :])
    img = load_image(tmp_path / "meta.png")
    assert img.icc_profile is None
    np.testing.assert_array_equal(levels(img.rgb, 65535), arr.transpose(2, 0, 1))


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1, "header only"])
def test_truncated_16bit_png_raises_image_error(tmp_path, keep):
    data = png_bytes(rand((40, 50, 3), np.uint16))
    cut = 45 if keep == "header only" else int(len(data) * keep)  # 45: IHDR and the start of IDAT
    (tmp_path / "cut16.png").write_bytes(data[:cut])
    with pytest.raises(ImageError, match=r"cut16.png is truncated .*re-download or re-export"):
        load_image(tmp_path / "cut16.png")


def test_huge_declared_16bit_png_is_refused_before_decoding(tmp_path, monkeypatch):
    """A 100000x100000 header (60 GB of pixels) in a file of 70 bytes: refused from the header."""

    def decode(*args, **kwargs):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(imagecodecs, "png_decode", decode)
    (tmp_path / "bomb.png").write_bytes(png_file(100_000, 100_000, 16, 2, b"\0" * 600))
    with pytest.raises(ImageError, match=r"bomb.png is too large: 100000x100000 .*RESSHIFT_MAX_PIXELS=none"):
        load_image(tmp_path / "bomb.png")


def test_16bit_gray_colour_key_gives_alpha_and_interlaced_gray_alpha_loads(tmp_path):
    arr = rand((5, 9), np.uint16)
    arr[1, 2] = 4321
    (tmp_path / "key16.png").write_bytes(png_bytes(arr, chunks=[(b"tRNS", struct.pack(">H", 4321))]))
    img = load_image(tmp_path / "key16.png")
    assert img.grayscale and img.bit_depth == 16
    np.testing.assert_array_equal(alpha_of(img)[0].numpy(), (arr != 4321).astype(np.float32))
    ga = rand((11, 13, 2), np.uint16)
    ga[0, 0, 1] = 0
    (tmp_path / "ga16.png").write_bytes(png_bytes(ga, interlace=True))
    img = load_image(tmp_path / "ga16.png")
    np.testing.assert_array_equal(levels(img.rgb, 65535), np.broadcast_to(ga[:, :, :1], (11, 13, 3)).transpose(2, 0, 1))
    np.testing.assert_array_equal(levels(alpha_of(img)[0], 65535), ga[:, :, 1])


def test_16bit_png_without_imagecodecs_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "p16.png").write_bytes(png_bytes(rand((2, 3, 3), np.uint16)))
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # `import imagecodecs` now fails
    with pytest.raises(ImageError, match=r"pip install imagecodecs"):
        load_image(tmp_path / "p16.png")
    assert [p.name for p in tmp_path.iterdir()] == ["p16.png"]
    # Writing needs no imagecodecs (our own PNG encoder); the file reads back once it is there.
    x = torch.rand(3, 2, 3)
    save_image(tmp_path / "o16.png", x, bit_depth=16)
    monkeypatch.delitem(sys.modules, "imagecodecs")
    back = load_image(tmp_path / "o16.png")
    assert back.bit_depth == 16
    torch.testing.assert_close(back.rgb, (x * 65535).round() / 65535, atol=1e-6, rtol=0)


@pytest.mark.parametrize("depth", [8, 16])
def test_zero_size_png(tmp_path, depth):
    (tmp_path / "zero.png").write_bytes(png_file(0, 5, depth, 2, b""))
    with pytest.raises(ImageError, match=r"zero.png.*zero width or height"):
        load_image(tmp_path / "zero.png")


def test_unsupported_mode(tmp_path):
    Image.fromarray(np.full((3, 3), 0.5, np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(ImageError, match=r"float.tif.*mode 'F'.*convert"):
        load_image(tmp_path / "float.tif")


def test_size_limit_replaces_pillows_bomb_check(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse 40x30 (> 2 x 100)
    Image.fromarray(rand((30, 40, 3), np.uint8)).save(tmp_path / "big.png")
    (tmp_path / "big16.png").write_bytes(png_bytes(rand((30, 40, 3), np.uint16)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "big.png").rgb.shape == (3, 30, 40)
    assert Image.MAX_IMAGE_PIXELS == 100  # restored
    for name in ("big.png", "big16.png"):
        with pytest.raises(ImageError, match=rf"{name}.*too large.*RESSHIFT_MAX_PIXELS"):
            load_image(tmp_path / name, max_pixels=1000)
        assert load_image(tmp_path / name, max_pixels=None).rgb.shape == (3, 30, 40)
        monkeypatch.setenv("RESSHIFT_MAX_PIXELS", "500")
        with pytest.raises(ImageError, match=r"too large"):
            load_image(tmp_path / name)
        monkeypatch.setenv("RESSHIFT_MAX_PIXELS", "none")
        assert load_image(tmp_path / name).rgb.shape == (3, 30, 40)
        monkeypatch.delenv("RESSHIFT_MAX_PIXELS")


# ---------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("where", ["rgb", "alpha"])
def test_non_finite_values_are_refused_and_nothing_is_written(tmp_path, bad, where):
    rgb = torch.rand(3, 4, 4)
    alpha = torch.rand(1, 4, 4)
    (rgb if where == "rgb" else alpha)[0, 1, 2] = bad
    with pytest.raises(ImageError, match=r"NaN|infinite"):
        save_image(tmp_path / "out.png", rgb, alpha, bit_depth=16)
    assert list(tmp_path.iterdir()) == []


def test_save_leaves_no_temporary_files_and_replaces_atomically(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    save_image(out, torch.zeros(3, 4, 4))
    save_image(out, torch.ones(3, 4, 4), bit_depth=16)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert load_image(out).rgb.min() == 1.0
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert (out.stat().st_mode & 0o777) == (0o666 & ~umask)

    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    jpg = tmp_path / "out.jpg"
    save_image(jpg, torch.ones(3, 4, 4))
    # PNGs go through our band encoder, the other formats through Pillow.
    for target, depth, owner, name in [
        (out, 16, PngStream, "write"),
        (out, 8, PngStream, "close"),
        (jpg, 8, Image.Image, "save"),
    ]:
        monkeypatch.setattr(owner, name, explode)
        with pytest.raises(ImageError, match=rf"{target.name}.*No space left"):
            save_image(target, torch.zeros(3, 4, 4), bit_depth=depth)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg", "out.png"]
        assert load_image(target).rgb.min() > 0.9  # the old file is untouched
        monkeypatch.undo()


def test_an_interrupted_save_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    save_image(out, torch.ones(3, 4, 4))

    def write_half_then_interrupt(self, pixels):
        self.f.write(b" half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(PngStream, "write", write_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_image(out, torch.zeros(3, 4, 4))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert load_image(out).rgb.min() == 1.0


def test_bad_tensors_are_refused(tmp_path):
    with pytest.raises(ImageError, match=r"1 or 3 channels"):
        save_image(tmp_path / "x.png", torch.rand(4, 3, 3))
    with pytest.raises(ImageError, match=r"floating point"):
        save_image(tmp_path / "x.png", torch.zeros(3, 3, 3, dtype=torch.uint8))
    with pytest.raises(ImageError, match=r"alpha must be"):
        save_image(tmp_path / "x.png", torch.rand(3, 3, 3), torch.rand(1, 2, 3))
    assert list(tmp_path.iterdir()) == []
    # batch of one and half precision are fine
    save_image(tmp_path / "ok.png", torch.rand(1, 3, 3, 3, dtype=torch.float16))


# ---------------------------------------------------------------- listing


def test_list_images(tmp_path):
    root = tmp_path / "photos"
    for rel in [
        "b.png",
        "a.JPG",
        "c.webp",
        "notes.txt",
        ".hidden.png",
        "sub/d.tif",
        "sub/e.bmp",
        ".git/x.png",
        "sub/deeper/f.jpeg",
        "a.png.tmp",
    ]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    names = [p.relative_to(root).as_posix() for p in list_images([root])]
    assert names == ["a.JPG", "b.png", "c.webp", "sub/d.tif", "sub/deeper/f.jpeg", "sub/e.bmp"]  # by path component
    assert [p.name for p in list_images([root], recursive=False)] == ["a.JPG", "b.png", "c.webp"]
    # files are kept as given, in order, without duplicates
    got = list_images([root / "notes.txt", root, root / "b.png"])
    assert got[0] == root / "notes.txt" and got.count(root / "b.png") == 1 and len(got) == 7
    assert list_images(str(root / "c.webp")) == [root / "c.webp"]
    with pytest.raises(ImageError, match=r"not found.*missing"):
        list_images([root, tmp_path / "missing"])
    assert list_images([tmp_path / "photos" / "sub" / "deeper"]) == [root / "sub/deeper/f.jpeg"]

"""landmarklib.images: decode by content, every mode to RGB, EXIF, GIF, bombs, resize modes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, features

from landmarklib import images
from landmarklib.httpserver import bomb_png, jpeg_bytes

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def near(pixel, expected, tol=12) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected))


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: encode(Image.new("RGB", (8, 6), RED), "JPEG", quality=95), RED),
        (lambda: encode(Image.new("L", (8, 6), 128), "JPEG", quality=95), (128, 128, 128)),
        (lambda: encode(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), "JPEG", quality=95), RED),
        (lambda: encode(Image.new("1", (8, 6), 1), "PNG"), WHITE),
        (lambda: encode(Image.new("P", (8, 6), 0), "PNG"), (0, 0, 0)),
        (lambda: encode(Image.new("RGB", (8, 6), BLUE), "BMP"), BLUE),
        (lambda: encode(Image.new("RGB", (8, 6), GREEN), "TIFF"), GREEN),
    ],
    ids=["rgb-jpeg", "gray-jpeg", "cmyk-jpeg", "1bit-png", "palette-png", "bmp", "tiff"],
)
def test_every_mode_becomes_rgb(make, expected):
    img = images.load_rgb(make())
    assert img.mode == "RGB" and img.size == (8, 6)
    assert near(img.getpixel((4, 3)), expected)


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(255, 0, 0, 255), (255, 0, 0, 0), (0, 0, 0, 128)])
    img = images.load_rgb(encode(rgba, "PNG"))
    assert img.getpixel((0, 0)) == RED
    assert img.getpixel((1, 0)) == WHITE
    assert near(img.getpixel((2, 0)), (127, 127, 127), tol=2)

    la = Image.new("LA", (2, 1))
    la.putdata([(0, 255), (0, 0)])
    img = images.load_rgb(encode(la, "PNG"))
    assert img.getpixel((0, 0)) == (0, 0, 0) and img.getpixel((1, 0)) == WHITE


def test_palette_transparency_is_white():
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0, 1])
    img = images.load_rgb(encode(pal, "PNG", transparency=1))
    assert img.getpixel((0, 0)) == RED and img.getpixel((1, 0)) == WHITE


def test_sixteen_bit_and_float_are_scaled_not_clipped():
    gray16 = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    assert gray16.mode == "I;16"
    img = images.load_rgb(encode(gray16, "PNG"))
    assert [img.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]

    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    img = images.load_rgb(encode(floats, "TIFF"))
    assert [img.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_gif_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in (RED, GREEN, BLUE)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    img = images.load_rgb(data)
    assert img.mode == "RGB" and near(img.getpixel((5, 5)), RED)


def test_exif_orientation_applied():
    stored = Image.new("RGB", (40, 20), RED)
    stored.paste(BLUE, (20, 0, 40, 20))  # left red, right blue as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    img = images.load_rgb(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert img.size == (20, 40)
    assert near(img.getpixel((10, 5)), RED, tol=40) and near(img.getpixel((10, 35)), BLUE, tol=40)
    # decoded at a reduced scale (400x200 -> 1/4), the orientation is still applied
    large = encode(stored.resize((400, 200)), "JPEG", exif=exif.tobytes())
    assert images.decode_for_size(large, 50).size == (50, 100)


def test_decoded_by_content_not_name(tmp_path):
    path = tmp_path / "photo.jpg"  # a PNG named .jpg
    path.write_bytes(encode(Image.new("RGB", (5, 4), GREEN), "PNG"))
    img = images.load_rgb(path)
    assert img.size == (5, 4) and img.getpixel((0, 0)) == GREEN


@pytest.mark.skipif(not features.check("webp"), reason="Pillow without WEBP")
def test_webp():
    assert near(images.load_rgb(encode(Image.new("RGB", (8, 8), BLUE), "WEBP", quality=100)).getpixel((4, 4)), BLUE)


def test_draft_decodes_large_jpeg_at_reduced_scale_but_never_below_size():
    data = jpeg_bytes(1600, 1200, seed=1)
    assert images.decode_for_size(data, 250).size == (400, 300)  # 1/4 scale: 1/8 would be < 250
    assert images.decode_for_size(data, 100).size == (200, 150)  # 1/8, the smallest DCT scale
    assert images.decode_for_size(data, 700).size == (1600, 1200)  # 1/2 would give 600 < 700
    assert images.load_rgb(data).size == (1600, 1200)
    assert images.decode_for_size(encode(Image.new("RGB", (900, 900)), "PNG"), 100).size == (900, 900)


def test_unusable_images_raise_image_error_with_reason():
    with pytest.raises(images.ImageError, match=r"^not an image \(cannot identify image file\)$"):
        images.load_rgb(b"<html>404</html>")
    with pytest.raises(images.ImageError, match=r"^not an image"):
        images.load_rgb(b"")
    data = jpeg_bytes(300, 200, seed=2)
    with pytest.raises(images.ImageError, match=r"^truncated image$"):
        images.load_rgb(data[: len(data) // 2])
    with pytest.raises(images.ImageError, match=r"^decompression bomb \(10000000000 pixels\)$"):
        images.load_rgb(bomb_png(100_000, 100_000))
    with pytest.raises(images.ImageError, match=r"^decompression bomb \(10000 pixels\)$"):
        images.open_image(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=9999)
    with pytest.raises(FileNotFoundError):
        images.load_rgb("/nonexistent/file.jpg")


def test_bomb_is_refused_from_the_header():
    # a header declaring 50000 x 50000: refused before any pixel is decoded (it would need 7.5 GB)
    with pytest.raises(images.ImageError, match="decompression bomb"):
        images.open_image(bomb_png(50_000, 50_000))


@pytest.mark.parametrize("mode", images.RESIZE_MODES)
@pytest.mark.parametrize("shape", [(300, 100), (100, 300), (64, 64), (1, 7), (5, 2)])
def test_resize_square_exact_size(mode, shape):
    out = images.resize_square(Image.new("RGB", shape, RED), 96, mode)
    assert out.size == (96, 96) and out.mode == "RGB"


def thirds() -> Image.Image:
    img = Image.new("RGB", (300, 100), RED)
    img.paste(GREEN, (100, 0, 200, 100))
    img.paste(BLUE, (200, 0, 300, 100))
    return img


def test_resize_modes_content():
    stretch = images.resize_square(thirds(), 60, "stretch")
    assert near(stretch.getpixel((5, 30)), RED) and near(stretch.getpixel((30, 30)), GREEN)
    assert near(stretch.getpixel((55, 30)), BLUE)

    crop = images.resize_square(thirds(), 60, "crop")  # the centre square is the green third
    assert all(near(crop.getpixel(xy), GREEN) for xy in [(1, 1), (30, 30), (58, 58)])

    pad = images.resize_square(thirds(), 60, "pad", fill=(0, 0, 0))  # 60x20 band in the middle
    assert pad.getpixel((30, 5)) == (0, 0, 0) and pad.getpixel((30, 55)) == (0, 0, 0)
    assert near(pad.getpixel((5, 30)), RED) and near(pad.getpixel((55, 30)), BLUE)

    with pytest.raises(ValueError, match="resize mode"):
        images.resize_square(thirds(), 60, "squash")


def test_encode_jpeg_round_trip():
    data = images.encode_jpeg(images.resize_square(images.load_rgb(jpeg_bytes(640, 480)), 250))
    back = Image.open(io.BytesIO(data))
    assert back.format == "JPEG" and back.size == (250, 250) and back.mode == "RGB"

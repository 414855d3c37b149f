"""decode_image: accepted formats, orientation, modes, and every refusal's exact code."""

from __future__ import annotations

import io
import resource
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageFile

from imagegen import (
    encode,
    exif_rotated_jpeg,
    incompressible_png,
    make_photo,
    orientation_test_image,
    photo_image,
    png_bomb,
    truncated_jpeg,
)
from lookalike.domain.errors import (
    INVALID_PIC_CONTENT,
    NO_SPECIFIED_PIC_CONTENT,
    UNSUPPORTED_PIC_FORMAT,
    UNSUPPORTED_PIC_PIXELS,
    LookalikeError,
)
from lookalike.domain.image_limits import ImageLimits
from lookalike.vision.decode import DecodedImage, decode_image


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (160, 120), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _animated_webp() -> bytes:
    frames = [Image.new("RGB", (160, 120), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    return buf.getvalue()


# (name, bytes factory, expected format, max mean pixel error against the source photo)
LOSSLESS_CASES: list[tuple[str, str, dict[str, object]]] = [
    ("PNG", "PNG", {}),
    ("BMP", "BMP", {}),
    ("TIFF", "TIFF", {}),
    ("TIFF-lzw", "TIFF", {"compression": "tiff_lzw"}),
    ("PPM", "PPM", {}),
    ("WEBP-lossless", "WEBP", {"lossless": True}),
]


@pytest.mark.parametrize(("name", "fmt", "kwargs"), LOSSLESS_CASES, ids=[c[0] for c in LOSSLESS_CASES])
def test_lossless_formats_round_trip_exactly(name: str, fmt: str, kwargs: dict[str, object]) -> None:
    src = photo_image(240, 180, seed=1)
    out = decode_image(encode(src, fmt, **kwargs))
    assert isinstance(out, DecodedImage)
    assert out.format == fmt
    assert (out.width, out.height) == (240, 180)
    assert out.image.mode == "RGB"
    assert out.image.size == (240, 180)
    assert _mean_abs_diff(out.image, src) == 0.0


@pytest.mark.parametrize(
    ("fmt", "kwargs", "tolerance"),
    [("JPEG", {"quality": 92}, 6.0), ("WEBP", {"quality": 90}, 8.0), ("GIF", {}, 25.0)],
)
def test_lossy_formats_round_trip_closely(fmt: str, kwargs: dict[str, object], tolerance: float) -> None:
    src = photo_image(240, 180, seed=2)
    out = decode_image(encode(src, fmt, **kwargs))
    assert out.format == fmt
    assert (out.width, out.height) == (240, 180)
    assert out.image.mode == "RGB"
    assert _mean_abs_diff(out.image, src) < tolerance


@pytest.mark.parametrize("factory", [_animated_gif, _animated_webp], ids=["GIF", "WEBP"])
def test_animated_pictures_give_the_first_frame(factory: Callable[[], bytes]) -> None:
    out = decode_image(factory(), ImageLimits(min_side=100))
    assert out.image.getpixel((80, 60)) == (255, 0, 0)


def test_pgm_and_pbm_are_read_by_the_ppm_plugin() -> None:
    grey = photo_image(200, 150, seed=3).convert("L")
    out = decode_image(encode(grey, "PPM"))
    assert out.format == "PPM"
    assert out.image.mode == "RGB"
    assert np.array_equal(np.asarray(out.image)[:, :, 0], np.asarray(grey))
    bits = grey.convert("1")
    out = decode_image(encode(bits, "PPM"))
    assert out.image.mode == "RGB"
    assert set(np.unique(np.asarray(out.image))) <= {0, 255}


def test_format_is_detected_from_content_not_name() -> None:
    # There is no name to go by at all: a PNG is a PNG whatever it was called.
    assert decode_image(make_photo(200, 200, fmt="PNG")).format == "PNG"


def test_exif_orientation_6_swaps_sides_and_rotates_clockwise() -> None:
    out = decode_image(exif_rotated_jpeg(6, 300, 150))
    assert (out.width, out.height) == (150, 300)
    assert out.image.size == (150, 300)
    # Stored top-left corner ends up top-right after a 90° clockwise turn.
    r, g, b = out.image.getpixel((140, 10))
    assert r > 200 and g < 60 and b < 60
    r, g, b = out.image.getpixel((10, 10))
    assert abs(r - 128) < 20 and abs(g - 128) < 20
    expected = orientation_test_image(300, 150).transpose(Image.Transpose.ROTATE_270)
    assert _mean_abs_diff(out.image, expected) < 4.0


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_every_exif_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    from PIL import ImageOps

    data = exif_rotated_jpeg(orientation, 300, 150)
    with Image.open(io.BytesIO(data)) as ref_img:
        expected = ImageOps.exif_transpose(ref_img).convert("RGB")
    out = decode_image(data)
    assert out.image.size == expected.size
    assert _mean_abs_diff(out.image, expected) == 0.0


def test_orientation_side_limits_apply_to_the_oriented_picture() -> None:
    # 300x150 stored, 150x300 shown: both fit 120..310 either way, the limits are symmetric.
    limits = ImageLimits(min_side=120, max_side=310)
    assert decode_image(exif_rotated_jpeg(6, 300, 150), limits).width == 150
    with pytest.raises(LookalikeError) as err:
        decode_image(exif_rotated_jpeg(6, 300, 150), ImageLimits(min_side=160))
    assert err.value.code == UNSUPPORTED_PIC_PIXELS


def test_rgba_is_composited_on_white() -> None:
    img = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (50, 50, 150, 150))
    img.paste((0, 0, 255, 128), (0, 0, 20, 20))
    out = decode_image(encode(img, "PNG")).image
    assert out.getpixel((190, 190)) == (255, 255, 255)
    assert out.getpixel((100, 100)) == (255, 0, 0)
    r, g, b = out.getpixel((5, 5))
    assert b == 255 and 120 <= r <= 135 and 120 <= g <= 135


def _transparent_la_png() -> bytes:
    rgba = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    rgba.paste((0, 128, 0, 255), (30, 30, 90, 90))
    return encode(rgba.convert("LA"), "PNG")


def _transparent_palette(fmt: str) -> bytes:
    img = Image.new("P", (120, 120), 0)
    img.putpalette([0, 0, 0, 0, 128, 0] + [0] * (254 * 3))
    img.paste(1, (30, 30, 90, 90))
    return encode(img, fmt, transparency=0)


@pytest.mark.parametrize(
    "factory",
    [_transparent_la_png, lambda: _transparent_palette("PNG"), lambda: _transparent_palette("GIF")],
    ids=["LA-png", "P-png", "P-gif"],
)
def test_transparent_modes_are_composited_on_white(factory: Callable[[], bytes]) -> None:
    out = decode_image(factory())
    assert out.image.getpixel((5, 5)) == (255, 255, 255)
    assert out.image.getpixel((60, 60)) != (255, 255, 255)


def test_cmyk_jpeg_becomes_rgb() -> None:
    src = photo_image(200, 160, seed=4)
    out = decode_image(encode(src.convert("CMYK"), "JPEG", quality=95))
    assert out.image.mode == "RGB"
    assert _mean_abs_diff(out.image, src) < 8.0


def test_16_bit_tiff_and_png_are_scaled_not_clipped() -> None:
    ramp = (np.tile(np.linspace(0, 65535, 256), (128, 1))).astype(np.uint16)
    img16 = Image.fromarray(ramp)
    assert img16.mode == "I;16"
    for fmt in ("TIFF", "PNG"):
        out = decode_image(encode(img16, fmt))
        arr = np.asarray(out.image)[:, :, 0]
        assert arr[0, 0] == 0 and arr[0, -1] == 255
        assert 120 <= arr[0, 128] <= 135, fmt  # mid-grey stays mid-grey


def test_one_bit_png_becomes_rgb() -> None:
    img = photo_image(150, 150).convert("1")
    out = decode_image(encode(img, "PNG"))
    assert out.image.mode == "RGB"
    assert set(np.unique(np.asarray(out.image))) <= {0, 255}


def test_mpo_reports_jpeg() -> None:
    # Pillow decodes multi-picture JPEGs (phone cameras) as MPO; it is still a JPEG.
    frames = [photo_image(200, 150, 1), photo_image(200, 150, 2)]
    buf = io.BytesIO()
    frames[0].save(buf, "MPO", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue()).format == "JPEG"


def test_truncated_loading_stays_off() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def _text() -> bytes:
    return b"This is a plain text file that someone named photo.jpg.\n" * 20


def _ico() -> bytes:
    return encode(photo_image(128, 128), "ICO", sizes=[(128, 128)])


def _random_bytes() -> bytes:
    return np.random.default_rng(11).integers(0, 256, size=50_000, dtype=np.uint8).tobytes()


def _jpeg_header_then_garbage() -> bytes:
    return b"\xff\xd8\xff\xe0" + _random_bytes()


def _corrupt_png_pixels() -> bytes:
    data = bytearray(make_photo(200, 200, fmt="PNG"))
    idat = data.index(b"IDAT")
    data[idat + 100 : idat + 400] = bytes(300)
    return bytes(data)


BAD_INPUTS: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty", lambda: b"", NO_SPECIFIED_PIC_CONTENT),
    ("truncated-jpeg", truncated_jpeg, INVALID_PIC_CONTENT),
    ("truncated-png", lambda: make_photo(300, 300, fmt="PNG")[:20_000], INVALID_PIC_CONTENT),
    ("corrupt-png-data", _corrupt_png_pixels, INVALID_PIC_CONTENT),
    ("5MB-png", incompressible_png, INVALID_PIC_CONTENT),
    ("png-bomb", png_bomb, UNSUPPORTED_PIC_PIXELS),
    ("50x50", lambda: make_photo(50, 50), UNSUPPORTED_PIC_PIXELS),
    ("5000x200", lambda: make_photo(5000, 200), UNSUPPORTED_PIC_PIXELS),
    ("200x5000-png", lambda: encode(Image.new("RGB", (200, 5000), (9, 9, 9)), "PNG"), UNSUPPORTED_PIC_PIXELS),
    ("text", _text, UNSUPPORTED_PIC_FORMAT),
    ("ico", _ico, UNSUPPORTED_PIC_FORMAT),
    ("psd-magic", lambda: b"8BPS\x00\x01" + bytes(100), UNSUPPORTED_PIC_FORMAT),
    ("pdf", lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", UNSUPPORTED_PIC_FORMAT),
    ("random", _random_bytes, UNSUPPORTED_PIC_FORMAT),
    ("jpeg-header-garbage", _jpeg_header_then_garbage, INVALID_PIC_CONTENT),
]


@pytest.mark.parametrize(("name", "factory", "code"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_are_refused_with_the_exact_code(
    name: str, factory: Callable[[], bytes], code: str
) -> None:
    with pytest.raises(LookalikeError) as err:
        decode_image(factory())
    assert err.value.code == code, err.value.message


def test_the_byte_limit_is_configurable_and_checked_first() -> None:
    data = make_photo(300, 300)
    with pytest.raises(LookalikeError) as err:
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))
    assert err.value.code == INVALID_PIC_CONTENT
    assert str(len(data) - 1) in err.value.message
    assert decode_image(data, ImageLimits(max_bytes=len(data))).width == 300


def test_the_pixel_count_limit_is_configurable() -> None:
    data = make_photo(400, 400)
    with pytest.raises(LookalikeError) as err:
        decode_image(data, ImageLimits(max_pixels=400 * 400 - 1))
    assert err.value.code == UNSUPPORTED_PIC_PIXELS
    assert decode_image(data, ImageLimits(max_pixels=400 * 400)).height == 400


def test_side_limits_are_inclusive() -> None:
    assert decode_image(make_photo(100, 4096, fmt="PNG")).height == 4096
    with pytest.raises(LookalikeError):
        decode_image(make_photo(99, 400))


def test_png_bomb_is_refused_from_the_header_without_allocating() -> None:
    data = png_bomb(20000, 20000)
    assert len(data) < 200_000
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(LookalikeError) as err:
            decode_image(data)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.code == UNSUPPORTED_PIC_PIXELS
    assert elapsed < 0.5
    assert peak < 50 * 1024 * 1024
    # Pillow's pixel buffers bypass tracemalloc; a decoded bomb would be 400 MB of RSS.
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert (rss_after - rss_before) * 1024 < 100 * 1024 * 1024


def test_bomb_under_pillows_own_limit_is_still_refused_by_ours() -> None:
    # 8000x8000 is below Pillow's global bomb limit, so only our header check stops it.
    data = png_bomb(8000, 8000)
    start = time.perf_counter()
    with pytest.raises(LookalikeError) as err:
        decode_image(data)
    assert err.value.code == UNSUPPORTED_PIC_PIXELS
    assert time.perf_counter() - start < 0.5


def test_webp_canvas_size_is_checked_before_pillow_opens_it() -> None:
    # A VP8X header claiming a 16000x16000 canvas; the decoder would allocate it at open.
    data = encode(Image.new("RGBA", (200, 200), (1, 2, 3, 128)), "WEBP", quality=80)
    assert data[12:16] == b"VP8X"  # lossy with alpha needs the extended format
    forged = data[:24] + (15999).to_bytes(3, "little") * 2 + data[30:]
    with pytest.raises(LookalikeError) as err:
        decode_image(forged)
    assert err.value.code == UNSUPPORTED_PIC_PIXELS


# --- reduced decode (issue 14): large JPEGs decoded scaled down by libjpeg, limits on the full size ---


@pytest.mark.parametrize(
    ("size", "image_size"),
    [
        ((4000, 3000), (1000, 750)),  # 1/4: the long side stays >= 960
        ((2400, 1600), (1200, 800)),  # 1/2
        ((1900, 1900), (1900, 1900)),  # half would go below 960: decoded whole
        ((4000, 300), (4000, 300)),  # the short side would go below 224
    ],
)
def test_a_large_jpeg_is_decoded_reduced_and_reports_its_full_size(
    size: tuple[int, int], image_size: tuple[int, int]
) -> None:
    # A photo drawn at a quarter of the size and scaled up (drawing 12 megapixels takes seconds).
    small = photo_image(size[0] // 4, size[1] // 4, seed=5)
    data = encode(small.resize(size, Image.Resampling.BILINEAR), "JPEG", quality=85)
    reduced = decode_image(data, reduced=True)
    assert (reduced.width, reduced.height) == size
    assert reduced.image.size == image_size
    assert (reduced.scale_x, reduced.scale_y) == (image_size[0] / size[0], image_size[1] / size[1])
    full = decode_image(data)
    assert full.image.size == size and full.scale_x == 1.0
    # The same picture, only smaller: compare at the reduced size.
    assert _mean_abs_diff(reduced.image, full.image.resize(image_size, Image.Resampling.BOX)) < 6.0


def test_a_reduced_rotated_jpeg_reports_its_oriented_full_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(orientation_test_image(4000, 2000), "JPEG", quality=90, exif=exif.tobytes())
    out = decode_image(data, reduced=True)
    assert (out.width, out.height) == (2000, 4000)
    assert out.image.size == (500, 1000)
    r, g, b = out.image.getpixel((480, 20))  # the stored top-left corner, now top-right
    assert r > 200 and g < 60 and b < 60


def test_only_jpegs_are_reduced_and_the_limits_apply_to_the_full_size() -> None:
    png = decode_image(encode(orientation_test_image(2400, 1600), "PNG"), reduced=True)
    assert png.image.size == (2400, 1600)
    with pytest.raises(LookalikeError) as refused:
        decode_image(encode(Image.new("RGB", (4200, 3000), (9, 99, 199)), "JPEG"), reduced=True)
    assert refused.value.code == UNSUPPORTED_PIC_PIXELS


def test_boxes_of_a_reduced_decode_are_in_the_pictures_pixels() -> None:
    """The subject crop found on the reduced image is reported, and cut, in the picture's own pixels."""
    from lookalike.domain.region import whole_image
    from lookalike.vision.prepare import prepare_for_embedding

    picture = Image.new("RGB", (4000, 3000), (245, 245, 245))
    picture.paste(photo_image(1200, 900, seed=3), (2400, 1600))  # a subject on a plain background
    data = encode(picture, "JPEG", quality=90)
    _, full_box, _ = prepare_for_embedding(decode_image(data), None, True)
    reduced = decode_image(data, reduced=True)
    crop, box, boxes = prepare_for_embedding(reduced, None, True)
    assert box != whole_image(4000, 3000)
    for a, b in zip(
        (box.x1, box.x2, box.y1, box.y2), (full_box.x1, full_box.x2, full_box.y1, full_box.y2), strict=True
    ):
        assert abs(a - b) <= 40  # a few pixels of the reduced image
    assert all(0 <= b.x1 < b.x2 <= 4000 and 0 <= b.y1 < b.y2 <= 3000 for b in boxes)
    assert abs(crop.width - box.width * reduced.scale_x) <= 2
    assert abs(crop.height - box.height * reduced.scale_y) <= 2
    # Without a crop the image itself is the view, as for a full decode.
    whole, whole_box, _ = prepare_for_embedding(reduced, None, False)
    assert whole is reduced.image and whole_box == whole_image(4000, 3000)

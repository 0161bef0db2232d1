"""Images: built-ins, import of user pixels, conversions, metrics."""

import io

import numpy as np
import pytest

from diffusion_lab.images import (HEAD_BYTES, IMAGE_NAMES, READABLE_FORMATS, Pictures, as_shown, file_format,
                                  from_pixels, from_uint8, make_image, nearest, psnr, to_rgba, to_uint8, training_set)


@pytest.mark.parametrize("size", [16, 64, 256])
@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_builtin_images(name, size):
    x = make_image(name, size)
    assert x.shape == (size, size) and x.dtype == np.float64
    assert x.min() >= -1 and x.max() <= 1
    assert x.max() - x.min() > 0.5, "an image, not a flat field"
    np.testing.assert_array_equal(x, make_image(name, size))  # deterministic


def test_at_least_three_natural_images_beyond_the_basic_four():
    assert IMAGE_NAMES[:4] == ("gradient", "checkerboard", "disc", "stripes")
    assert len(IMAGE_NAMES) >= 7 and len(set(IMAGE_NAMES)) == len(IMAGE_NAMES)


def test_gradient_dark_left_bright_right():
    x = make_image("gradient", 64)
    assert x[0, 0] == -1.0 and x[0, -1] == 1.0
    assert np.all(np.diff(x, axis=1) > 0)
    assert np.all(x == x[0])  # every row identical


@pytest.mark.parametrize("args", [("nope", 64), ("disc", 15), ("disc", 257), ("disc", 64.0)])
def test_make_image_validation(args):
    with pytest.raises(ValueError, match="choose one of|size"):
        make_image(*args)


def test_from_pixels_gray_identity_and_range():
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    x = from_pixels(gray, 64)
    np.testing.assert_allclose(x, gray / 127.5 - 1, atol=1e-12)


def test_from_pixels_rgb_luma_rec601():
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[..., 0] = 255
    assert from_pixels(rgb, 16)[0, 0] == pytest.approx(2 * 0.299 - 1)
    rgb[..., 0], rgb[..., 1] = 0, 255
    assert from_pixels(rgb, 16)[5, 5] == pytest.approx(2 * 0.587 - 1)


def test_from_pixels_rgba_over_white():
    rgba = np.zeros((32, 32, 4), np.uint8)  # black, alpha 0 -> white
    np.testing.assert_allclose(from_pixels(rgba, 16), 1.0)
    rgba[..., 3] = 255  # opaque black
    np.testing.assert_allclose(from_pixels(rgba, 16), -1.0)
    rgba[..., 3] = 51  # 20% black over white -> 0.8
    np.testing.assert_allclose(from_pixels(rgba, 16), 2 * 0.8 - 1, atol=1e-12)


def test_from_pixels_tiny_and_non_square():
    np.testing.assert_allclose(from_pixels(np.array([[255]], np.uint8), 32), 1.0)
    two = np.array([[0, 255]], np.uint8)  # 1x2: centre crop keeps the left pixel
    np.testing.assert_allclose(from_pixels(two, 16), -1.0)
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 255  # the centre square is white
    np.testing.assert_allclose(from_pixels(wide, 16), 1.0)
    tall = np.zeros((30, 10), np.uint8)
    tall[:10] = 255
    np.testing.assert_allclose(from_pixels(tall, 16), -1.0)
    # upscaling 2x2 -> 16x16: blocks stay blocks
    checker = np.array([[0, 255], [255, 0]], np.uint8)
    up = from_pixels(checker, 16)
    assert up[0, 0] == -1 and up[0, 15] == 1 and up[15, 0] == 1 and up[15, 15] == -1


def test_from_pixels_box_filter_averages():
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    np.testing.assert_allclose(from_pixels(checker, 16), 0.0, atol=1e-12)  # 4x4 blocks average to grey
    odd = (np.indices((300, 300)).sum(axis=0) % 2 * 255).astype(np.uint8)
    x = from_pixels(odd, 64)  # non-integer ratio 300/64: area is conserved, stays near grey
    assert x.mean() == pytest.approx(odd.mean() / 127.5 - 1, abs=1e-12)
    assert np.abs(x).max() < 0.05
    block = np.kron(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16, np.ones((3, 3), np.uint8))  # 12x12
    np.testing.assert_allclose(from_pixels(block, 16)[::4, ::4], block[::3, ::3] / 127.5 - 1, atol=1e-12)


def test_from_pixels_big_image():
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    big[:, :500] = 0  # cropped away
    x = from_pixels(big, 64)
    assert x.shape == (64, 64) and np.abs(x.mean()) < 0.02


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4)), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 5), np.uint8), np.zeros(5, np.uint8)]
)
def test_from_pixels_validation(bad):
    with pytest.raises(ValueError):
        from_pixels(bad, 16)


@pytest.mark.parametrize("pillow_format, expected", [
    ("PNG", "PNG"), ("JPEG", "JPEG"), ("GIF", "GIF"), ("WEBP", "WebP"), ("BMP", "BMP"), ("TIFF", "TIFF"),
    ("PDF", "PDF"), ("ICO", "ICO")])  # (Pillow writes AVIF only from 11.2, and not in Pyodide: see below)
def test_a_picture_file_is_known_by_its_first_bytes_whatever_its_name(pillow_format, expected):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(buffer, format=pillow_format)
    assert file_format(buffer.getvalue()[:HEAD_BYTES]) == expected
    assert (expected in READABLE_FORMATS) == (pillow_format in ("PNG", "JPEG", "GIF", "WEBP", "BMP"))


@pytest.mark.parametrize("head, expected", [
    (b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>', "SVG"),
    (b'\xef\xbb\xbf\n  <?xml version="1.0"?><svg>', "SVG"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),  # an iPhone photo
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", ""),  # RIFF, but sound
    (b"not a picture", ""), (b"", ""), (b"BM"[:1], ""),
])
def test_drawings_phone_photos_and_other_files_are_told_apart(head, expected):
    assert file_format(head) == expected


def test_to_uint8_and_rgba():
    x = np.array([[-2.0, -1.0, 0.0], [0.5, 1.0, 3.0]])
    np.testing.assert_array_equal(to_uint8(x), [[0, 0, 128], [191, 255, 255]])
    rgba = to_rgba(x)
    assert rgba.dtype == np.uint8 and rgba.shape == (2, 3, 4) and rgba.flags.c_contiguous
    for c in range(3):
        np.testing.assert_array_equal(rgba[..., c], to_uint8(x))
    assert np.all(rgba[..., 3] == 255)
    u = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(from_uint8(u)), u)
    np.testing.assert_array_equal(to_rgba(to_uint8(x)), rgba)  # uint8 input is taken as is
    assert from_uint8(u)[0] == -1 and from_uint8(u)[-1] == 1
    # As the page shows it: a float picture rounded and clipped to its grey levels, a uint8 one as it is.
    np.testing.assert_array_equal(as_shown(x), from_uint8(to_uint8(x)))
    np.testing.assert_array_equal(as_shown(u), from_uint8(u))
    assert as_shown(np.array([-3.0, 3.0])).tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("budget, kept_as", [(3 * 4 * 4 * 4, np.float32), (3 * 4 * 4 * 4 - 1, np.uint8)])
def test_pictures_read_back_as_the_uint8_pictures_of_the_states(budget, kept_as):
    """Within the budget a run is kept as float32, beyond it as uint8; either way a read gives to_uint8."""
    states = [np.random.default_rng(seed).normal(scale=1.5, size=(4, 4)) for seed in range(3)]
    pictures = Pictures(3, (4, 4), budget)
    assert pictures.dtype == kept_as and not pictures
    for x in states:
        pictures.append(x)
    assert len(pictures) == 3
    for k, x in enumerate(states):
        assert pictures[k].dtype == np.uint8
        np.testing.assert_array_equal(pictures[k], to_uint8(x))
    np.testing.assert_array_equal(pictures[-1], to_uint8(states[-1]))
    kept = pictures.states([0, 2])  # the states themselves, beyond [-1, 1], while the budget allows
    if kept_as == np.uint8:
        assert kept is None
    else:
        assert kept.dtype == np.float32 and np.abs(kept).max() > 1
        np.testing.assert_array_equal(kept, np.stack([states[0], states[2]]).astype(np.float32))


def test_training_set():
    a = training_set(32, 20, seed=0)
    assert a.shape == (20, 32, 32) and a.min() >= -1 and a.max() <= 1
    np.testing.assert_array_equal(a, training_set(32, 20, seed=0))
    assert not np.array_equal(a, training_set(32, 20, seed=1))
    flat = a.reshape(20, -1)
    d = np.sqrt(((flat[:, None] - flat[None]) ** 2).mean(axis=2)) + np.eye(20)
    assert d.min() > 0.05, "images are distinct"


def test_psnr_and_nearest():
    x = make_image("disc", 16)
    assert psnr(x, x) == float("inf")
    assert psnr(np.full_like(x, 1e200), x) == float("-inf")  # the squared error overflows: no math domain error
    assert psnr(x + 0.02, x) == pytest.approx(10 * np.log10(4 / 0.02**2))
    images = np.stack([make_image(n, 16) for n in IMAGE_NAMES])
    index, distance = nearest(x + 0.01, images)
    assert index == IMAGE_NAMES.index("disc") and distance == pytest.approx(0.01)

"""Images: built-in test pictures, import of user pixels, conversion for display.

Every image here is a float64 (size, size) array in [-1, 1] (-1 black, +1
white), the range DDPM works in (Ho et al. 2020, sec. 3.3). The built-ins are
drawn procedurally with anti-aliased edges, so they look the same at any size
and need no download.
"""

from __future__ import annotations

import io
import math

import numpy as np

IMAGE_NAMES = ("gradient", "checkerboard", "disc", "stripes", "face", "landscape", "cells")
MIN_SIZE, MAX_SIZE = 16, 256
LUMA = (0.299, 0.587, 0.114)  # Rec. 601 luma weights (as Pillow's convert("L")), on encoded values


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE}, got {size!r}")
    return int(size)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel-centre coordinates u (right), v (down) in (0, 1), and the pixel width."""
    c = (np.arange(size) + 0.5) / size
    return c[None, :], c[:, None], 1.0 / size


def _inside(distance: np.ndarray, pixel: float) -> np.ndarray:
    """Anti-aliased indicator of a signed distance < 0 (1 inside, 0 outside, ramp of one pixel)."""
    return np.clip(0.5 - distance / pixel, 0.0, 1.0)


def _gradient(size):
    return np.tile(np.linspace(0.0, 1.0, size), (size, 1))


def _checkerboard(size):
    u, v, _ = _grid(size)
    return ((np.floor(u * 8) + np.floor(v * 8)) % 2).astype(np.float64)


def _disc(size):
    u, v, px = _grid(size)
    return _inside(np.hypot(u - 0.5, v - 0.5) - 0.3, px)


def _stripes(size):
    u, v, px = _grid(size)
    period = 1 / 6  # six bright bars, each half a period wide
    phase = (u % period) / period
    return _inside(np.abs(phase - 0.5) * period - period / 4, px) * np.ones_like(v)


def _face(size):
    """A smiley portrait: face disc, two eyes, a smiling mouth, on a mid-grey background."""
    u, v, px = _grid(size)
    img = 0.45 + 0.1 * v * np.ones_like(u)
    r = np.hypot(u - 0.5, v - 0.52)
    img = img + (0.9 - img) * _inside(r - 0.36, px)
    for cx in (0.37, 0.63):
        img = img * (1 - _inside(np.hypot((u - cx) / 0.8, v - 0.42) * 0.8 - 0.05, px))
    mouth = np.abs(np.hypot(u - 0.5, v - 0.5) - 0.2) - 0.025  # ring of radius 0.2 ...
    mouth = np.maximum(mouth, 0.62 - v)  # ... lower part only
    return img * (1 - 0.85 * _inside(mouth, px))


def _landscape(size):
    """Bright sky fading down, a sun, two hill ranges and a dark foreground."""
    u, v, px = _grid(size)
    img = 0.95 - 0.5 * v * np.ones_like(u)
    img = img + (1.0 - img) * _inside(np.hypot(u - 0.72, v - 0.25) - 0.09, px)
    far = 0.55 + 0.08 * np.sin(2 * math.pi * (1.3 * u + 0.1)) + 0.03 * np.sin(2 * math.pi * 4.1 * u)
    img = img + (0.45 - img) * _inside(far - v, px)
    near = 0.72 + 0.06 * np.sin(2 * math.pi * (0.8 * u + 0.6)) + 0.02 * np.sin(2 * math.pi * 6.3 * u)
    img = img + (0.18 - img) * _inside(near - v, px)
    return img


def _cells(size):
    """Soft bright blobs of several sizes on a dark background, like a micrograph."""
    u, v, _ = _grid(size)
    img = np.zeros((size, size))
    golden = math.pi * (3 - math.sqrt(5))
    for k in range(14):
        radius = 0.36 * math.sqrt((k + 0.5) / 14)
        cx, cy = 0.5 + radius * math.cos(k * golden), 0.5 + radius * math.sin(k * golden)
        width = 0.035 + 0.03 * ((k * 7) % 5) / 4
        img = np.maximum(img, np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * width**2)))
    return 0.05 + 0.9 * img


_MAKERS = {
    "gradient": _gradient,
    "checkerboard": _checkerboard,
    "disc": _disc,
    "stripes": _stripes,
    "face": _face,
    "landscape": _landscape,
    "cells": _cells,
}


def make_image(name: str, size: int = 64) -> np.ndarray:
    """The built-in image ``name`` as float64 (size, size) in [-1, 1]; size 16..256."""
    if name not in _MAKERS:
        raise ValueError(f"unknown image {name!r}; choose one of {', '.join(IMAGE_NAMES)}")
    unit = _MAKERS[name](_check_size(size))  # drawn in [0, 1]
    return np.clip(2.0 * unit - 1.0, -1.0, 1.0)


def _box_resize_axis(img: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Exact area average of piecewise-constant pixels onto ``size`` equal cells along ``axis``.

    Differences of the running sum at fractional cell edges give each cell's
    integral (box filter). Downscaling averages; upscaling becomes nearest
    neighbour with area-weighted boundary pixels. O(pixels) for any ratio.
    """
    n = img.shape[axis]
    cumulative = np.concatenate([np.zeros_like(np.take(img, [0], axis=axis)), np.cumsum(img, axis=axis)], axis=axis)
    edges = np.linspace(0.0, n, size + 1)
    lower = np.minimum(np.floor(edges).astype(np.intp), n - 1)  # intp: int32 in wasm32
    frac = (edges - lower).reshape([-1 if a == axis else 1 for a in range(img.ndim)])
    c0 = np.take(cumulative, lower, axis=axis)
    c1 = np.take(cumulative, lower + 1, axis=axis)
    at_edges = c0 + frac * (c1 - c0)
    return np.diff(at_edges, axis=axis) * (size / n)


def from_pixels(pixels: np.ndarray, size: int = 64) -> np.ndarray:
    """Any uint8 gray (H, W), RGB (H, W, 3) or RGBA (H, W, 4) array -> (size, size) in [-1, 1].

    Alpha is composited over white; gray is Rec. 601 luma 0.299 R + 0.587 G +
    0.114 B of the encoded values; the centre square is cropped, then resized
    with an exact box (area-average) filter.
    """
    size = _check_size(size)
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ValueError(f"pixels must have shape (H, W), (H, W, 3) or (H, W, 4), got {pixels.shape}")
    h, w = pixels.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"pixels is empty, shape {pixels.shape}")
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = pixels[top : top + side, left : left + side]
    if crop.ndim == 2:
        gray = crop / 255.0
    else:
        gray = (LUMA[0] * crop[..., 0] + LUMA[1] * crop[..., 1] + LUMA[2] * crop[..., 2]) / 255.0
        if crop.shape[2] == 4:
            alpha = crop[..., 3] / 255.0
            gray = gray * alpha + (1.0 - alpha)  # over white
    square = _box_resize_axis(_box_resize_axis(gray, size, 0), size, 1)
    return np.clip(2.0 * square - 1.0, -1.0, 1.0)


READABLE_FORMATS = ("PNG", "JPEG", "GIF", "WebP", "BMP")  # what every browser's image decoder reads
HEAD_BYTES = 32  # file_format needs no more of a file than this
_SIGNATURES = (  # (offset, bytes, format): the magic numbers at the start of each kind of file
    (0, b"\x89PNG\r\n\x1a\n", "PNG"), (0, b"\xff\xd8\xff", "JPEG"), (0, b"GIF87a", "GIF"), (0, b"GIF89a", "GIF"),
    (8, b"WEBP", "WebP"), (0, b"BM", "BMP"), (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"),
    (4, b"ftypavif", "AVIF"), (4, b"ftypavis", "AVIF"), (4, b"ftypheic", "HEIC"), (4, b"ftypheix", "HEIC"),
    (4, b"ftypmif1", "HEIC"), (4, b"ftyphevc", "HEIC"), (0, b"%PDF", "PDF"), (0, b"8BPS", "PSD"),
    (0, b"\x00\x00\x01\x00", "ICO"),
)


def file_format(head: bytes) -> str:
    """The kind of picture file whose first bytes are `head` ("PNG", "TIFF", "SVG", ...), or "" if none.

    By content, not by name: a picture saved without its extension is still
    one, and a text file named .png is not. (WebP also needs "RIFF" first.)
    """
    for offset, magic, name in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic and (name != "WebP" or head.startswith(b"RIFF")):
            return name
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()  # an optional UTF-8 mark and blanks before the markup
    if text.startswith((b"<svg", b"<?xml", b"<!doctype svg")):
        return "SVG"
    return ""


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] -> uint8 [0, 255], clipped and rounded."""
    return np.rint((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def from_uint8(gray: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float64 [-1, 1], the inverse of to_uint8 up to rounding."""
    return np.asarray(gray, dtype=np.float64) / 127.5 - 1.0


def as_shown(x: np.ndarray) -> np.ndarray:
    """A picture as the page shows it: rounded to its 256 grey levels (clipped), back in [-1, 1] as float64."""
    return from_uint8(as_uint8(x))


def as_uint8(x: np.ndarray) -> np.ndarray:
    """A picture as uint8: float ones in [-1, 1] through to_uint8, uint8 ones as they are."""
    return x if x.dtype == np.uint8 else to_uint8(x)


class Pictures:
    """The pictures of a run, one per step, kept for scrubbing; each one reads back as uint8.

    They are kept as float32 while `count` of them fit in `budget_bytes`: keeping one
    is a cheap cast, and the rounding to uint8 waits until it is read. Beyond the
    budget they are kept as uint8 (a quarter of the memory), rounded as they come;
    in the browser that rounding is about a third of a 64x64, 1000-step DDPM run.
    """

    def __init__(self, count: int, shape: tuple[int, ...], budget_bytes: int) -> None:
        self.dtype = np.float32 if count * math.prod(shape) * 4 <= budget_bytes else np.uint8
        self._items: list[np.ndarray] = []

    def append(self, x: np.ndarray) -> None:
        self._items.append(to_uint8(x) if self.dtype == np.uint8 else x.astype(np.float32))

    def __getitem__(self, k: int) -> np.ndarray:
        return as_uint8(self._items[k])

    def states(self, ks) -> np.ndarray | None:
        """The states at indices ``ks`` as float32 (len(ks), H, W), unclipped; None if kept as uint8."""
        if self.dtype == np.uint8:
            return None
        return np.stack([self._items[k] for k in ks])

    def __len__(self) -> int:
        return len(self._items)


def to_rgba(x: np.ndarray) -> np.ndarray:
    """Gray (H, W) -> C-contiguous uint8 (H, W, 4): gray in R, G, B and alpha 255 (canvas ImageData).

    x is either float in [-1, 1] or already uint8 (as read from Pictures).
    """
    gray = as_uint8(x)
    out = np.empty(gray.shape + (4,), dtype=np.uint8)
    out[..., :3] = gray[..., None]
    out[..., 3] = 255
    return out


def training_set(size: int = 64, count: int = 32, *, seed: int = 0) -> np.ndarray:
    """A small deterministic image set (count, size, size) for the ideal denoiser.

    Cycles through discs (moved, resized), stripes (angle, period), gradients
    (angle), rings and the built-in face, landscape and cells (shifted, contrast), with
    parameters from np.random.default_rng(seed).random(), the main one
    stratified so that repeats of a kind differ.
    """
    size = _check_size(size)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    rng = np.random.default_rng(seed)
    u, v, px = _grid(size)
    kinds = ("disc", "stripes", "gradient", "ring", "face", "landscape", "cells")
    out = np.empty((count, size, size))
    per_kind = -(-count // len(kinds))
    for i in range(count):
        p = rng.random(4)
        kind = kinds[i % len(kinds)]
        q = (i // len(kinds) + p[0]) / per_kind  # stratified in [0, 1): repeats of a kind differ
        if kind == "disc":
            cx, cy, r = 0.3 + 0.4 * q, 0.3 + 0.4 * p[1], 0.12 + 0.18 * p[2]
            unit = 0.1 + 0.8 * _inside(np.hypot(u - cx, v - cy) - r, px)
        elif kind == "stripes":
            angle, period = math.pi * q, 0.12 + 0.2 * p[1]
            unit = 0.5 + 0.45 * np.sin(2 * math.pi * ((u - 0.5) * math.cos(angle) + (v - 0.5) * math.sin(angle)) / period)
        elif kind == "gradient":
            angle = 2 * math.pi * q
            unit = 0.5 + 0.65 * ((u - 0.5) * math.cos(angle) + (v - 0.5) * math.sin(angle))
        elif kind == "ring":
            cx, cy, r = 0.35 + 0.3 * p[1], 0.35 + 0.3 * p[2], 0.12 + 0.2 * q
            unit = 0.9 - 0.8 * _inside(np.abs(np.hypot(u - cx, v - cy) - r) - 0.05, px)
        else:
            shift = (int((q - 0.5) * size / 2), int((p[1] - 0.5) * size / 3))
            contrast = 0.6 + 0.4 * p[2]
            unit = 0.5 + contrast * (np.roll(_MAKERS[kind](size), shift, axis=(0, 1)) - 0.5)
        out[i] = np.clip(2.0 * unit - 1.0, -1.0, 1.0)
    return out


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [-1, 1] (data range 2); inf if equal, -inf if the squared
    error overflows."""
    with np.errstate(over="ignore"):  # an overflow is the -inf below
        mse = float(np.mean(np.square(np.asarray(x, dtype=np.float64) - ref)))
    if mse == 0 or math.isinf(mse):
        return math.inf if mse == 0 else -math.inf
    return 10.0 * math.log10(4.0 / mse)


def nearest(x: np.ndarray, images: np.ndarray) -> tuple[int, float]:
    """Index of the image in ``images`` (N, H, W) closest to x, and its RMS distance."""
    images = np.asarray(images, dtype=np.float64)
    diff = images.reshape(images.shape[0], -1) - np.ravel(x)
    rms = np.sqrt(np.mean(diff * diff, axis=1))
    i = int(np.argmin(rms))
    return i, float(rms[i])


MID_GREY = 0.5  # a pixel with |x| below this is nearer mid-grey than black or white


def crisp_shares(pictures: np.ndarray) -> np.ndarray:
    """For each picture of a stack (N, H, W): the share of its pixels nearer black or white than mid-grey.

    Handwritten digits are strokes on paper: in 99% of the training digits at least 64% of the pixels are. A
    chain too short to settle on one ends in a grey blur (with the trained network, T = 2 to 5: 46-62%).
    """
    pictures = np.asarray(pictures, dtype=np.float64)
    return np.mean(np.abs(pictures) > MID_GREY, axis=tuple(range(1, pictures.ndim)))


def crisp_floor(pictures: np.ndarray, percent: float = 1.0) -> float:
    """The crisp share (crisp_shares) that all but ``percent``% of these pictures reach."""
    return float(np.percentile(crisp_shares(pictures), percent))


def save_image_set(path, images: np.ndarray, **numbers: float) -> None:
    """Store an image set (N, H, W) in [-1, 1] compactly (uint8) with named numbers about it, for the pages."""
    np.savez_compressed(path, images=to_uint8(images), **{name: np.float64(value) for name, value in numbers.items()})


def load_image_set(source) -> tuple[np.ndarray, dict[str, float]]:
    """(images float64 in [-1, 1], numbers) saved by save_image_set, from a path or the file's bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    with np.load(source, allow_pickle=False) as data:
        numbers = {name: float(data[name]) for name in data.files if name != "images"}
        return from_uint8(data["images"]), numbers

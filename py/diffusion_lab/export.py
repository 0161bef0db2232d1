"""How results leave the page: PNG, animated GIF and .npz files, made in memory as bytes.

Pillow encodes the pictures (it ships with matplotlib, in Pyodide too), numpy
the arrays. Pictures are uint8 as the pages draw them (images.to_uint8); the
pages enlarge them (``enlarged``) so that an 8x8 digit is not a speck in an
image viewer, and the .npz keeps the exact numbers. Nothing here touches files
or the DOM: the page hands the bytes to the browser as a download.
"""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

GIF_FRAME_MS = 40  # 25 frames per second
GIF_LAST_MS = 1500  # the end of the chain stays on screen before the loop restarts
GIF_MAX_FRAMES = 101
ENLARGED_PX = 256  # downloaded pictures are at least this wide, each pixel a square block


def enlarged(pixels: np.ndarray, at_least: int = ENLARGED_PX) -> np.ndarray:
    """``pixels`` (H, W, ...) with each pixel repeated into an n x n block, the smallest n that makes the
    longer side at least ``at_least`` (n = 1 when it already is): sharp squares, the values unchanged."""
    if pixels.ndim < 2 or 0 in pixels.shape[:2]:
        raise ValueError(f"need a picture of at least 1x1 pixels, got shape {pixels.shape}")
    n = max(1, -(-at_least // max(pixels.shape[:2])))
    return pixels.repeat(n, axis=0).repeat(n, axis=1)


def frame_indices(count: int, limit: int = GIF_MAX_FRAMES) -> np.ndarray:
    """At most ``limit`` evenly spaced indices into ``count`` items, always the first and the last."""
    if count < 1 or limit < 2:
        raise ValueError(f"need count >= 1 and limit >= 2, got {count} and {limit}")
    if count <= limit:
        return np.arange(count, dtype=np.int64)  # int64 on every platform (wasm32's default is int32)
    return np.unique(np.round(np.linspace(0, count - 1, limit)).astype(np.int64))


def png(pixels: np.ndarray) -> bytes:
    """A PNG of an (H, W) grey or (H, W, 4) RGBA uint8 array."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 4)):
        raise ValueError(f"need uint8 (H, W) or (H, W, 4) pixels, got {pixels.dtype} {pixels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def gif(frames: list[np.ndarray], *, frame_ms: int = GIF_FRAME_MS, last_ms: int = GIF_LAST_MS) -> bytes:
    """A looping animated GIF of (H, W) uint8 grey frames (Pillow merges runs of identical frames)."""
    if not frames:
        raise ValueError("need at least one frame")
    pictures = [Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)) for frame in frames]
    durations = [frame_ms] * (len(pictures) - 1) + [last_ms]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=durations, loop=0)
    return buffer.getvalue()


def npz(settings: dict, **arrays) -> bytes:
    """A compressed .npz of ``arrays`` plus ``settings`` as a JSON string (loads without allow_pickle)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, settings=np.array(json.dumps(settings, sort_keys=True)),
                        **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()

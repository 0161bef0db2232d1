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
import zipfile
from collections.abc import Iterator

import numpy as np
from PIL import Image

GIF_FRAME_MS = 40  # 25 frames per second
GIF_LAST_MS = 1500  # the end of the chain stays on screen before the loop restarts
GIF_MAX_FRAMES = 101
ENLARGED_PX = 256  # downloaded pictures are at least this wide, each pixel a square block
NPZ_PIECE_BYTES = 2**20  # npz_written compresses this much at a time (30 ms here, 0.1 s on a slow phone)


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
    """A compressed .npz of ``arrays`` plus ``settings`` as a JSON string (loads without allow_pickle), the file
    np.savez_compressed writes."""
    buffer = io.BytesIO()
    for _ in npz_written(buffer, settings, **arrays):
        pass
    return buffer.getvalue()


def npz_written(buffer, settings: dict, **arrays) -> Iterator[float]:
    """Write npz()'s file into ``buffer`` a piece of NPZ_PIECE_BYTES at a time, yielding after each the share
    written: a page lets the browser paint and answer between them (a chain's 33 MB compressed in one call froze
    a slow phone for 3.6 s)."""
    entries = {"settings": np.array(json.dumps(settings, sort_keys=True)),
               **{name: np.asarray(value) for name, value in arrays.items()}}
    total, done = max(1, sum(array.nbytes for array in entries.values())), 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, array in entries.items():
            if not array.flags.c_contiguous:  # written in C order, as its header will say
                array = np.ascontiguousarray(array)
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, np.lib.format.header_data_from_array_1_0(array))
                rows = array.reshape(-1) if array.ndim == 0 else array  # pieces of whole rows, in C order
                step = max(1, NPZ_PIECE_BYTES // max(1, rows[:1].nbytes))
                for start in range(0, len(rows), step):
                    piece = rows[start:start + step]
                    member.write(piece.tobytes())
                    done += piece.nbytes
                    if piece.nbytes * 4 >= NPZ_PIECE_BYTES:  # small arrays go on with the next
                        yield done / total
    yield 1.0

"""Frames of the image viewer: contrast windowing to 8 bits and PNG encoding (zlib + struct).

PNG is written by hand rather than through an imaging library: grayscale,
RGB and RGBA 8-bit images need only the signature, IHDR, one IDAT and IEND.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from functions.engine.errors import BadRequest

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types by number of channels: gray, RGB, RGBA
_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}
#: zlib level 1: frames are re-encoded on every scrub step; speed beats size here
_ZLEVEL = 1


@dataclass(frozen=True)
class Window:
    """The value range mapped to 0..255 (values outside are clipped)."""

    lo: float
    hi: float


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 image of shape (h, w) or (h, w, 3|4)."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError("encode_png takes uint8 (h, w) or (h, w, channels)")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels not in _COLOUR_TYPE:
        raise ValueError(f"{channels} channels cannot be a PNG here (1, 3 or 4)")
    height, width = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    # Each scanline starts with its filter type; 0 (none) keeps encoding one pass of zlib
    raw = np.zeros((height, width * channels + 1), dtype=np.uint8)
    raw[:, 1:] = rows
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[channels], 0, 0, 0)
    return (
        _SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw.tobytes(), _ZLEVEL))
        + _chunk(b"IEND", b"")
    )


def window_for(
    plane: np.ndarray,
    lo: float | None = None,
    hi: float | None = None,
    plo: float | None = None,
    phi: float | None = None,
) -> Window:
    """The contrast window: explicit *lo*/*hi*, else percentiles *plo*/*phi*, else min/max."""
    finite = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
    if finite.size == 0:
        return Window(0.0, 1.0)
    if lo is None:
        lo = float(np.percentile(finite, plo)) if plo is not None else float(finite.min())
    if hi is None:
        hi = float(np.percentile(finite, phi)) if phi is not None else float(finite.max())
    return Window(float(lo), float(hi))


def to_uint8(plane: np.ndarray, window: Window) -> np.ndarray:
    """Map *window* linearly onto 0..255 (a flat window maps to 0; NaNs to 0)."""
    span = window.hi - window.lo
    data = plane.astype(np.float32, copy=False)
    if span <= 0:
        out = np.where(data > window.lo, 255, 0)
    else:
        out = (data - np.float32(window.lo)) * np.float32(255.0 / span)
        np.clip(out, 0, 255, out=out)
        out = np.rint(out, out=out)
    return np.nan_to_num(out, nan=0).astype(np.uint8)


def check_image_dtype(dtype: np.dtype) -> None:
    """Refuse what has no brightness (structured, complex, strings) with a clear 400."""
    if dtype.kind not in "biuf":
        raise BadRequest(f"only integer, float or boolean arrays can be shown as images, not {dtype}")


def frame_png(plane: np.ndarray, window: Window) -> bytes:
    """A plane (h, w) or (h, w, 3|4) windowed to 8 bits, as PNG."""
    check_image_dtype(plane.dtype)
    if plane.dtype.kind == "b":
        plane = plane.astype(np.uint8)
    return encode_png(to_uint8(plane, window))

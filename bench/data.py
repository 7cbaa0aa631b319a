"""The benchmark datasets, written as ``.b2nd`` files under ``bench/data/`` (git-ignored)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import blosc2
import numpy as np

from infra.example_data import TOMO_BLOCKS, TOMO_CHUNKS, TOMO_SHAPE, tomography

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Sizes:
    """Geometry of the two datasets (full run or ``--quick``)."""

    big_shape: tuple[int, int]
    big_chunks: tuple[int, int]
    tomo_shape: tuple[int, int, int]
    tomo_chunks: tuple[int, int, int]
    tomo_blocks: tuple[int, int, int]

    def big_slice(self) -> tuple[slice, slice]:
        """About a quarter of the rows, not chunk-aligned at either end (all columns)."""
        n = self.big_shape[0]
        start = n // 8 + self.big_chunks[0] // 2 - 25
        return (slice(start, start + n // 4), slice(None))


#: 25000 x 1000 float64 = 200 MB in 100 chunks of 250 x 1000 (2 MB each).  100
#: chunks, not the 25 of (1000, 1000) chunks, so that "1 % of the chunks" is one
#: whole chunk and the re-publish figure measures the product, not rounding.
FULL = Sizes((25_000, 1_000), (250, 1_000), TOMO_SHAPE, TOMO_CHUNKS, TOMO_BLOCKS)
QUICK = Sizes((1_000, 500), (100, 500), (16, 128, 128), (8, 64, 64), (4, 32, 32))


def big_array(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth 2-D field plus noise at float32 precision, stored as float64.

    Like instrument data written as doubles: the low mantissa bits are zero, the
    rest is noisy, so Blosc2 (shuffle + zstd) compresses it about 3x -- neither
    the 100x of a ramp nor the 1x of white noise.
    """
    rng = np.random.default_rng(seed)
    n, m = shape
    y = np.linspace(0, 20, n)[:, None]
    x = np.linspace(0, 7, m)[None, :]
    field = np.sin(y) * np.cos(x) * 100 + y * x
    noisy = field + rng.normal(0, 0.01, size=shape)
    return noisy.astype(np.float32).astype(np.float64)


def write_big(path: Path, sizes: Sizes) -> np.ndarray:
    data = big_array(sizes.big_shape)
    path.unlink(missing_ok=True)
    blosc2.asarray(data, chunks=sizes.big_chunks, urlpath=str(path), mode="w")
    return data


def write_tomo(path: Path, sizes: Sizes) -> np.ndarray:
    data = tomography(sizes.tomo_shape)
    path.unlink(missing_ok=True)
    blosc2.asarray(data, chunks=sizes.tomo_chunks, blocks=sizes.tomo_blocks, urlpath=str(path), mode="w")
    return data


def change_chunks(path: Path, nchunks: list[int], seed: int) -> None:
    """Rewrite whole chunks of a 2-D ``.b2nd`` in place; the others keep their bytes.

    ``NDArray.__setitem__`` on a chunk-aligned box recompresses just that chunk and
    updates the frame's offsets; untouched chunks are not rewritten.  The new values
    are new measurements of the same kind (fresh noise at float32 precision), so the
    changed chunk compresses like the one it replaces.
    """
    arr = blosc2.open(str(path), mode="a")
    rows = arr.chunks[0]
    per_row = -(-arr.shape[1] // arr.chunks[1])
    rng = np.random.default_rng(seed)
    for n in nchunks:
        r, c = divmod(n, per_row)
        box = (
            slice(r * rows, min((r + 1) * rows, arr.shape[0])),
            slice(c * arr.chunks[1], min((c + 1) * arr.chunks[1], arr.shape[1])),
        )
        current = arr[box]
        fresh = current + rng.normal(0, 0.01, size=current.shape)
        arr[box] = fresh.astype(np.float32).astype(np.float64)
    del arr

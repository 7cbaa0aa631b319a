"""The storage limit: parallel boto3 GETs of a dataset's chunk objects plus assembly.

No API, no plan, no hash checks: the chunk keys are known up front (from the
manifest, read outside the timing), every touched chunk is one GET from the same
S3 endpoint the read plans point at, and each is decompressed straight into its
place in the output array by the thread that fetched it.  Written independently
of ``catclient.wire`` so that the limit does not inherit the product's costs.
"""

from __future__ import annotations

import itertools
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import blosc2
import numpy as np


@dataclass(frozen=True)
class ChunkLayout:
    """What the assembly needs: geometry and, per chunk, its S3 key or inline bytes."""

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    blocks: tuple[int, ...]
    dtype: np.dtype
    keys: tuple[str | None, ...]
    inline: dict[int, bytes]
    sizes: tuple[int, ...]

    @classmethod
    def from_origin(cls, s3, bucket: str, root: str, path: str) -> ChunkLayout:
        """Read the head and manifest (plain JSON, see docs/ARCHITECTURE.md) from the origin."""
        import base64

        head = json.loads(s3.get_object(Bucket=bucket, Key=f"h/{root}/{path}.json")["Body"].read())
        man = json.loads(s3.get_object(Bucket=bucket, Key=head["manifest"])["Body"].read())
        geo, refs = man["geometry"], man["refs"]
        keys, inline, sizes = [], {}, []
        for i, ref in enumerate(refs):
            sizes.append(int(ref["n"]))
            if "i" in ref:
                keys.append(None)
                inline[i] = base64.b64decode(ref["i"])
            else:
                keys.append(f"c/{ref['h'][:2]}/{ref['h']}")
        return cls(
            tuple(geo["shape"]),
            tuple(geo["chunks"]),
            tuple(geo["blocks"]),
            np.dtype(geo["dtype"]),
            tuple(keys),
            inline,
            tuple(sizes),
        )

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(math.ceil(s / c) for s, c in zip(self.shape, self.chunks, strict=True))

    def touched(self, box: tuple[slice, ...]) -> list[int]:
        """Flat indices of the chunks a box (step-1 slices) intersects."""
        ranges = [range(b.start // c, (b.stop - 1) // c + 1) for b, c in zip(box, self.chunks, strict=True)]
        grid = self.grid
        return [int(np.ravel_multi_index(idx, grid)) for idx in itertools.product(*ranges)]

    def chunk_array(self, data: bytes) -> np.ndarray:
        """A chunk's decompressed bytes as a C-order array of the chunk shape.

        A b2nd chunk is stored block after block, each block in C order, over the
        chunk shape padded up to whole blocks.
        """
        ext = [math.ceil(c / b) * b for c, b in zip(self.chunks, self.blocks, strict=True)]
        nb = [e // b for e, b in zip(ext, self.blocks, strict=True)]
        flat = np.frombuffer(blosc2.decompress2(data), dtype=self.dtype)
        nd = len(self.chunks)
        arr = flat.reshape(*nb, *self.blocks)
        order = [ax for i in range(nd) for ax in (i, nd + i)]
        arr = arr.transpose(order).reshape(ext)
        return arr[tuple(slice(0, c) for c in self.chunks)]


def normalize_box(key, shape: tuple[int, ...]) -> tuple[slice, ...]:
    key = key if isinstance(key, tuple) else (key,)
    key = key + (slice(None),) * (len(shape) - len(key))
    return tuple(slice(*k.indices(n)[:2]) for k, n in zip(key, shape, strict=True))


def read(s3, bucket: str, layout: ChunkLayout, key=(), *, workers: int = 16) -> np.ndarray:
    """``dataset[key]`` (a box of step-1 slices) from parallel GETs of its chunks."""
    box = normalize_box(key, layout.shape)
    out = np.empty([b.stop - b.start for b in box], dtype=layout.dtype)
    grid = layout.grid

    def one(n: int) -> int:
        k = layout.keys[n]
        data = layout.inline[n] if k is None else s3.get_object(Bucket=bucket, Key=k)["Body"].read()
        chunk = layout.chunk_array(data)
        idx = np.unravel_index(n, grid)
        src, dst = [], []
        for i, b, c in zip(idx, box, layout.chunks, strict=True):
            lo, hi = max(b.start, i * c), min(b.stop, (i + 1) * c)
            src.append(slice(lo - i * c, hi - i * c))
            dst.append(slice(lo - b.start, hi - b.start))
        out[tuple(dst)] = chunk[tuple(src)]
        return len(data)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, layout.touched(box)))
    return out

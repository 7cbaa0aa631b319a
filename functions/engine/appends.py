"""Appending along the first axis: what fits, and which chunks an append keeps or rebuilds."""

from __future__ import annotations

import math

import blosc2
import numpy as np

from catclient import wire
from functions.engine.content import load_object
from functions.engine.errors import BadRequest
from functions.engine.model import Content, Kind, Manifest
from functions.engine.region import CacheStats, Region
from functions.engine.spaces import Location


def conform(new: blosc2.NDArray, geo: wire.Geometry, loc: Location) -> np.ndarray:
    """The appended values as numpy in the target's dtype, or BadRequest saying what does not fit."""
    shape = tuple(geo.shape)
    if not shape:
        raise BadRequest(f"{loc.path} is 0-dimensional; there is no axis to append along")
    if new.ndim != len(shape) or tuple(new.shape[1:]) != shape[1:]:
        raise BadRequest(
            f"cannot append an array of shape {tuple(new.shape)} to {loc.path} of shape {shape}: "
            f"all but the first dimension must match"
        )
    dtype = wire.dtype_from_str(geo.dtype)
    if new.dtype != dtype and not np.can_cast(new.dtype, dtype, casting="same_kind"):
        raise BadRequest(f"cannot append {new.dtype} values to {loc.path} of dtype {dtype}")
    return np.asarray(new[:]).astype(dtype, copy=False)


def appended(manifest: Manifest, values: np.ndarray, region: Region) -> tuple[Content, list[bytes | None]]:
    """Content of *manifest*'s array with *values* appended, and the chunk bytes only it has.

    In C order axis 0 varies slowest, so the chunks of every complete row of
    chunks (``chunks[0]`` items along axis 0) keep their index and bytes.  Only
    the last row, when partial, is rebuilt together with the new values.
    """
    geo = manifest.geometry
    shape, chunk_shape = tuple(geo.shape), tuple(geo.chunks)
    per_row = math.prod(math.ceil(s / c) for s, c in zip(shape[1:], chunk_shape[1:], strict=True))
    kept_rows = shape[0] // chunk_shape[0]
    keep = kept_rows * per_row
    start = kept_rows * chunk_shape[0]
    if start < shape[0]:
        tail_chunks = region.chunks(manifest, range(keep, len(manifest.refs)), CacheStats())
        tail = np.asarray(wire.assemble_ndarray(geo, tail_chunks, with_vlmeta=False)[start:])
        values = np.concatenate([tail, values], axis=0)
    part = load_object(
        blosc2.asarray(
            np.ascontiguousarray(values),
            chunks=chunk_shape,
            blocks=tuple(geo.blocks),
            cparams=wire.cparams_from_dict(geo.cparams),
        )
    )
    old = manifest.content
    dropped = old.refs[keep:]
    # cbytes counts each chunk plus its entry in the frame's offsets index; derive that
    # per-chunk overhead from the old figures so the new total is what blosc2 would report
    overhead = (old.cbytes - sum(r.size for r in old.refs)) / max(1, len(old.refs))
    refs = old.refs[:keep] + part.content.refs
    new_shape = [start + values.shape[0], *shape[1:]]
    geometry = {
        **old.geometry,
        "shape": new_shape,
        "nchunks": len(refs),
        "nbytes": len(refs) * int(old.geometry["chunksize"]),
    }
    cbytes = int(old.cbytes - sum(r.size for r in dropped) - overhead * len(dropped) + part.content.cbytes)
    content = Content(kind=Kind.NDARRAY, geometry=geometry, vlmeta=old.vlmeta, cbytes=cbytes, refs=refs)
    return content, [None] * keep + list(part.chunks)

"""What ``/api/info`` says of a stored dataset or lazy expression (Caterva2's metadata JSON)."""

from __future__ import annotations

import math

from functions.engine.model import Kind, Manifest

__all__ = ["accept_ranges", "info_json"]


def accept_ranges(m: Manifest) -> str:
    """``"bytes"`` for what ``/api/fetch`` serves byte-exactly (a kept frame), else ``"none"``.

    Said in ``api/info`` so that ``blosc2.C2Array``/``Proxy`` know, before asking for any
    bytes, whether to read the frame by ranges or whole chunks through ``/api/chunk``.
    """
    exact = m.content.frame is not None and m.kind in (Kind.NDARRAY, Kind.SCHUNK)
    return "bytes" if exact else "none"


def info_json(m: Manifest) -> dict:
    """The metadata JSON of a dataset's manifest (paths and operands as stored)."""
    geo = m.geometry
    c = m.content
    schunk = {
        "cbytes": c.cbytes,
        "chunkshape": math.prod(geo.chunks) if geo.chunks else geo.items_per_chunk,
        "chunksize": geo.chunksize,
        "contiguous": True,
        "cparams": dict(geo.cparams),
        "cratio": round(geo.nbytes / c.cbytes, 4) if c.cbytes else 0.0,
        "nbytes": geo.nbytes,
        "urlpath": f"{m.root}/{m.path}",
        "vlmeta": dict(c.vlmeta),
        "nchunks": geo.nchunks,
        "mtime": None,
    }
    if m.kind == Kind.LAZY:
        g = m.content.geometry
        return {
            "shape": list(geo.shape),
            "chunks": list(geo.chunks),
            "blocks": list(geo.blocks),
            "dtype": geo.dtype,
            "expression": g["expression"],
            "operands": dict(g["operands"]),
            # What blosc2.C2Array needs to open it (cparams) and what Proxy chunks by
            "schunk": {**schunk, "cratio": 0.0, "urlpath": f"{m.root}/{m.path}"},
            "mtime": m.mtime,
            "version": m.version,
            "accept_ranges": "none",
        }
    if m.kind == Kind.NDARRAY:
        return {
            "shape": list(geo.shape),
            "chunks": list(geo.chunks),
            "blocks": list(geo.blocks),
            "dtype": geo.dtype,
            "schunk": schunk,
            "mtime": m.mtime,
            "version": m.version,
            # Only a kept frame is served by ranges; saying "none" for a rebuilt one
            # spares blosc2.Proxy a probing request (it reads chunks instead)
            "accept_ranges": accept_ranges(m),
        }
    return {**schunk, "mtime": m.mtime, "version": m.version, "accept_ranges": accept_ranges(m)}

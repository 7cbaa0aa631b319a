"""Dtypes, compression parameters and the geometry a dataset is rebuilt from.

These are the JSON forms manifests, ``/api/info`` and read plans carry.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

import blosc2
import numpy as np

_CPARAM_FIELDS = (
    "codec",
    "codec_meta",
    "clevel",
    "use_dict",
    "typesize",
    "nthreads",
    "blocksize",
    "splitmode",
    "filters",
    "filters_meta",
    "tuner",
)


def dtype_to_str(dtype: np.dtype) -> str:
    """``str(dtype)`` as Caterva2 reports it; structured dtypes as their descr repr."""
    dtype = np.dtype(dtype)
    return repr(dtype.descr) if dtype.fields else str(dtype)


def dtype_from_str(text: str) -> np.dtype:
    """Inverse of :func:`dtype_to_str` (never evaluates code: literals only)."""
    text = text.strip()
    if text.startswith("["):
        return np.dtype([tuple(f) for f in ast.literal_eval(text)])
    return np.dtype(text)


def _enum_int(value) -> int:
    # blosc2's Codec/Filter/SplitMode/Tuner are plain Enums, not IntEnums
    return int(getattr(value, "value", value))


def cparams_to_dict(cparams) -> dict:
    """A ``blosc2.CParams`` as plain JSON (enums as ints), only CParams fields."""
    out = {}
    for name in _CPARAM_FIELDS:
        value = getattr(cparams, name)
        if isinstance(value, list | tuple):
            value = [_enum_int(v) for v in value]
        elif isinstance(value, bool):
            value = bool(value)
        else:
            value = _enum_int(value)
        out[name] = value
    return out


def cparams_from_dict(d: Mapping) -> blosc2.CParams:
    """Rebuild ``blosc2.CParams`` from :func:`cparams_to_dict` output."""
    return blosc2.CParams(
        codec=blosc2.Codec(d["codec"]),
        codec_meta=d["codec_meta"],
        clevel=d["clevel"],
        use_dict=bool(d["use_dict"]),
        typesize=d["typesize"],
        nthreads=d.get("nthreads", 1),
        blocksize=d["blocksize"],
        splitmode=blosc2.SplitMode(d["splitmode"]),
        filters=[blosc2.Filter(f) for f in d["filters"]],
        filters_meta=list(d["filters_meta"]),
        tuner=blosc2.Tuner(d["tuner"]),
    )


@dataclass(frozen=True)
class Geometry:
    """What is needed to rebuild a dataset from its chunks (a manifest's shape part)."""

    kind: str  # "ndarray" | "schunk" | "file"
    shape: tuple[int, ...] | None
    chunks: tuple[int, ...] | None
    blocks: tuple[int, ...] | None
    dtype: str | None
    cparams: dict
    chunksize: int
    typesize: int
    nbytes: int
    nchunks: int
    vlmeta: dict

    @classmethod
    def from_json(cls, d: Mapping) -> Geometry:
        """Build from a manifest or plan JSON object."""

        def tup(v):
            return None if v is None else tuple(int(x) for x in v)

        return cls(
            kind=d["kind"],
            shape=tup(d.get("shape")),
            chunks=tup(d.get("chunks")),
            blocks=tup(d.get("blocks")),
            dtype=d.get("dtype"),
            cparams=dict(d["cparams"]),
            chunksize=int(d["chunksize"]),
            typesize=int(d["typesize"]),
            nbytes=int(d["nbytes"]),
            nchunks=int(d["nchunks"]),
            vlmeta=dict(d.get("vlmeta") or {}),
        )

    @property
    def items_per_chunk(self) -> int:
        """Items (typesize units) in a full chunk of an SChunk."""
        return max(1, self.chunksize // max(1, self.typesize))

    @property
    def nitems(self) -> int:
        """Items in an SChunk."""
        return self.nbytes // max(1, self.typesize)

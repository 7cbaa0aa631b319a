"""What a user's arguments mean: dataset paths, selection keys, and ``/api/info`` metadata.

Everything here is pure (no HTTP): it turns what a caller passes to
:class:`catclient.Client` into what :mod:`catclient.wire` and the API take.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import PurePath

import numpy as np

from catclient import wire
from catclient.errors import BadRequest

BLOSC2_SUFFIXES = (".b2nd", ".b2frame")

#: A string key that is ``slice_`` syntax (else a dataset reads it as a field or a filter)
SLICE_LIKE = re.compile(r"^[\s\[\(]*-?\d*\s*(:\s*-?\d*\s*){0,2}(,\s*-?\d*\s*(:\s*-?\d*\s*){0,2})*[\]\)\s]*$")


# --------------------------------------------------------------------------- paths


def path_str(path) -> str:
    """A dataset path as ``root/rel`` text.

    Parameters
    ----------
    path : str, PurePath, or a catclient Root, File or Group
        Objects stand for their ``path``.

    Raises
    ------
    BadRequest
        If the path is empty.

    """
    if not isinstance(path, str | PurePath):
        path = getattr(path, "path", path)  # Root, File, Group
    text = path.as_posix() if isinstance(path, PurePath) else str(path)
    text = text.strip().strip("/")
    if not text:
        raise BadRequest("a path is needed (root or root/path)")
    return text


# --------------------------------------------------------------------------- keys


def _slice_entry(entry: slice, what: str) -> slice:
    def bound(v):
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise BadRequest(f"slice bounds must be integers, not {v!r} in {what}")
        return int(v)

    if entry.step is not None and bound(entry.step) == 0:
        raise BadRequest(f"slice step cannot be zero in {what}")
    return slice(bound(entry.start), bound(entry.stop), bound(entry.step))


def _index_array(entry) -> np.ndarray:
    """A list or array entry as a 1-d int64 index array (boolean masks become their indices)."""
    arr = np.asarray(entry)
    if arr.dtype == np.bool_:
        if arr.ndim != 1:
            raise BadRequest("boolean masks must be one-dimensional (one per dimension)")
        arr = np.flatnonzero(arr)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise BadRequest(f"index arrays must hold integers, not {arr.dtype}")
    if arr.ndim != 1:
        raise BadRequest("index arrays must be one-dimensional")
    return arr.astype(np.int64)


def _key_entry(entry, what: str):
    """One entry of a key, checked: an int, a slice or an index array."""
    if isinstance(entry, bool | np.bool_):
        raise BadRequest(f"{entry!r} is not an index")
    if isinstance(entry, int | np.integer):
        return int(entry)
    if isinstance(entry, slice):
        return _slice_entry(entry, what)
    if isinstance(entry, list | np.ndarray):
        return _index_array(entry)
    if entry is None:
        raise BadRequest("numpy.newaxis (None) cannot index a remote dataset")
    raise BadRequest(f"cannot index a remote dataset with {entry!r}")


def _expand_ellipsis(key: tuple, ndim: int | None) -> tuple:
    """*key* with its (at most one) ``...`` replaced by full slices."""
    ellipses = [i for i, k in enumerate(key) if k is Ellipsis]
    if len(ellipses) > 1:
        raise BadRequest("an index can only have a single ellipsis ('...')")
    if not ellipses:
        return key
    i = ellipses[0]
    fill = max(0, (ndim if ndim is not None else len(key) - 1) - (len(key) - 1))
    return key[:i] + (slice(None),) * fill + key[i + 1 :]


def normalize_key(key, ndim: int | None) -> tuple[tuple, bool]:
    """Turn a user key into a tuple of ints, slices and index arrays.

    Parameters
    ----------
    key : None, str, int, slice, list, numpy.ndarray, Ellipsis or tuple of those
        A string is Caterva2's ``slice_`` syntax (``"2:4, 3:6"``); lists and
        arrays are fancy (coordinate) indices, boolean ones masks.
    ndim : int or None
        Dimensions of the dataset (1 for SChunks and files).

    Returns
    -------
    (tuple, bool)
        The key and whether it is fancy (holds index arrays).

    Raises
    ------
    BadRequest
        For keys that cannot index a remote dataset.

    """
    if key is None:
        return (), False
    if isinstance(key, str):
        try:
            return wire.parse_slice(key, ndim), False
        except wire.SliceError as exc:
            raise BadRequest(str(exc)) from None
    if not isinstance(key, tuple):
        key = (key,)
    what = repr(key)
    out = tuple(_key_entry(entry, what) for entry in _expand_ellipsis(key, ndim))
    if ndim is not None and len(out) > ndim:
        raise BadRequest(f"too many indices: {len(out)} for {ndim} dimension(s)")
    return out, any(isinstance(entry, np.ndarray) for entry in out)


def indices_param(key: tuple) -> str:
    """The ``indices`` JSON of a fancy key (one entry per dimension)."""
    entries: list = []
    for entry in key:
        if isinstance(entry, np.ndarray):
            entries.append([int(v) for v in entry])
        elif isinstance(entry, slice):
            entries.append(None if entry == slice(None) else wire.format_slice((entry,)))
        else:
            entries.append(int(entry))
    return json.dumps(entries, separators=(",", ":"))


# --------------------------------------------------------------------------- /api/info metadata


def kind_of(meta: Mapping) -> str:
    """``group``, ``ctable``, ``ndarray`` or ``schunk`` (SChunks and plain files) from ``/api/info``."""
    if meta.get("kind") in ("group", "ctable"):
        return meta["kind"]
    return "ndarray" if "shape" in meta else "schunk"


def geometry_of(meta: Mapping, path: str) -> wire.Geometry | None:
    """Assembly geometry from ``/api/info`` (None for lazy expressions, which have no chunks)."""
    if "expression" in meta:
        return None  # computed on read: its chunks exist nowhere to be fetched
    try:
        if "shape" in meta:
            sc = meta["schunk"]
            d = {
                "kind": "ndarray",
                "shape": meta["shape"],
                "chunks": meta["chunks"],
                "blocks": meta["blocks"],
                "dtype": meta["dtype"],
            }
        else:
            sc = meta
            kind = "schunk" if path.endswith(BLOSC2_SUFFIXES) else "file"
            d = {"kind": kind, "shape": None, "chunks": None, "blocks": None, "dtype": None}
        d.update(
            cparams=sc["cparams"],
            chunksize=sc["chunksize"],
            typesize=sc["cparams"]["typesize"],
            nbytes=sc["nbytes"],
            nchunks=sc["nchunks"],
            vlmeta=sc.get("vlmeta") or {},
        )
        return wire.Geometry.from_json(d)
    except (KeyError, TypeError, ValueError):
        return None


def cbytes_of(meta: Mapping) -> int:
    """Compressed (stored) bytes from ``/api/info``."""
    sc = meta.get("schunk", meta)
    return int(sc.get("cbytes") or sc.get("nbytes") or 0)


def selection_nbytes(meta: Mapping, key: tuple) -> int:
    """Uncompressed bytes a key selects (an upper bound for several index arrays); 0 if unknown.

    Raises
    ------
    BadRequest
        If *key* does not fit the dataset.

    """
    try:
        if "shape" in meta:
            itemsize = wire.dtype_from_str(meta["dtype"]).itemsize
            return wire.selected_nbytes(key, meta["shape"], itemsize)
        typesize = int(meta["cparams"]["typesize"])
        items = wire.schunk_item_range(key, int(meta["nbytes"]) // max(1, typesize))
        return len(range(items.start, items.stop, items.step)) * typesize
    except wire.SliceError as exc:
        raise BadRequest(str(exc)) from None
    except (KeyError, TypeError, ValueError):
        return 0

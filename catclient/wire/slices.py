"""Slice syntax and chunk geometry: which chunks a key touches.

Client and server both use these, so the server's ``/api/fetch`` and the
client's read plans can never disagree about which chunks a slice touches.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence

import numpy as np

Key = tuple  # a tuple of ints and slices, one per leading dimension


class SliceError(ValueError):
    """A ``slice_``/``indices`` parameter that cannot be read or does not fit."""


#: Largest index magnitude accepted: numpy indexes with int64, and a bigger bound would wrap or overflow
MAX_INDEX = 2**63 - 1


def _parse_int(text: str, original: str) -> int:
    text = text.strip()
    try:
        value = int(text)
    except ValueError:
        raise SliceError(f"slice_ is not a slice: {original!r} ({text!r} is not an integer)") from None
    if abs(value) > MAX_INDEX:
        raise SliceError(f"slice_ is not a slice: {original!r} ({text!r} is beyond 64 bits)")
    return value


def parse_slice(text: str | None, ndim: int | None = None) -> Key:
    """Parse Caterva2's ``slice_`` syntax into a key.

    Parameters
    ----------
    text : str or None
        Comma-separated entries, each an integer or ``start:stop[:step]`` with
        empty bounds allowed (``"2:4, 3:6"``).  Empty or None selects everything.
    ndim : int, optional
        The dataset's number of dimensions; more entries than that are refused.

    Returns
    -------
    tuple
        A tuple of ``int`` and ``slice`` objects.

    Raises
    ------
    SliceError
        If the text is malformed or has too many entries.

    """
    if text is None or not text.strip():
        return ()
    # Bracketed forms (``[1,2]`` or ``(1, 2)``) are what people paste from numpy
    stripped = text.strip()
    if stripped[0] in "[(" and stripped[-1] in "])":
        stripped = stripped[1:-1]
    key: list[int | slice] = []
    for entry in stripped.split(","):
        entry = entry.strip()
        if not entry:
            raise SliceError(f"slice_ is not a slice: {text!r} (empty entry)")
        if ":" in entry:
            parts = entry.split(":")
            if len(parts) > 3:
                raise SliceError(f"slice_ is not a slice: {text!r} ({entry!r} has too many ':')")
            bounds = [None if not p.strip() else _parse_int(p, text) for p in parts]
            bounds += [None] * (3 - len(bounds))
            if bounds[2] == 0:
                raise SliceError(f"slice_ is not a slice: {text!r} (step cannot be zero)")
            key.append(slice(*bounds))
        else:
            key.append(_parse_int(entry, text))
    if ndim is not None and len(key) > ndim:
        raise SliceError(f"slice_ is not a slice: {text!r} has {len(key)} entries for {ndim} dimension(s)")
    return tuple(key)


def format_slice(key: Key) -> str:
    """Write a key back in ``slice_`` syntax (the inverse of :func:`parse_slice`)."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    for entry in key:
        if isinstance(entry, slice):
            parts = ["" if v is None else str(int(v)) for v in (entry.start, entry.stop)]
            if entry.step not in (None, 1):
                parts.append(str(int(entry.step)))
            out.append(":".join(parts))
        elif entry is Ellipsis:
            raise SliceError("an Ellipsis cannot be written as slice_; expand it first")
        else:
            out.append(str(int(entry)))
    return ",".join(out)


def normalize_key(key: Key, shape: Sequence[int]) -> tuple[tuple, list[int]]:
    """Bounds-check *key* against *shape* and expand it to one entry per dimension.

    Entries may be ints, slices or integer index arrays (numpy fancy indexing).

    Returns
    -------
    (tuple, list)
        The full key with non-negative integers, ``slice.indices``-normalised
        slices and non-negative index arrays, and the dimensions dropped by
        integer entries.

    Raises
    ------
    SliceError
        If an index is out of range.

    """
    if len(key) > len(shape):
        raise SliceError(f"slice_ has {len(key)} entries for {len(shape)} dimension(s)")
    full: list = []
    dropped = []
    for dim, n in enumerate(shape):
        entry = key[dim] if dim < len(key) else slice(None)
        if isinstance(entry, slice):
            full.append(slice(*entry.indices(n)))
        elif isinstance(entry, np.ndarray):
            if entry.size and (entry.min() < -n or entry.max() >= n):
                raise SliceError(f"indices out of range for dimension {dim} of length {n}")
            full.append(entry % n if n else entry)
        else:
            i = int(entry)
            if not -n <= i < n:
                raise SliceError(f"index {i} is out of range for dimension {dim} of length {n}")
            full.append(i % n)
            dropped.append(dim)
    return tuple(full), dropped


def _dim_plan(entry, chunk: int) -> tuple[slice, object, list[int]]:
    """Bounding range of one normalised entry, the entry relative to it, and its chunks."""
    if isinstance(entry, np.ndarray):
        if entry.size == 0:
            return slice(0, 0), entry, []
        lo, hi = int(entry.min()), int(entry.max()) + 1
        return slice(lo, hi), entry - lo, sorted({int(c) for c in np.unique(entry // chunk)})
    if isinstance(entry, slice):
        idx = range(entry.start, entry.stop, entry.step)
        if len(idx) == 0:
            return slice(0, 0), slice(0, 0), []
        lo, hi = min(idx[0], idx[-1]), max(idx[0], idx[-1]) + 1
        rel = slice(
            idx[0] - lo,
            None if entry.step < 0 and idx[-1] == lo else idx[-1] - lo + (1 if entry.step > 0 else -1),
            entry.step,
        )
        return slice(lo, hi), rel, chunk_ids_along(entry, chunk)
    return slice(entry, entry + 1), 0, [entry // chunk]


def key_plan(key: Key, shape: Sequence[int], chunks: Sequence[int]) -> tuple[tuple, tuple, list[int]]:
    """How to read *key*: a bounding box, the key relative to the box, and the chunks touched.

    ``array[box][relative]`` equals ``array[key]`` for any mix of ints, slices
    (any step) and index arrays, and only the chunks listed are needed.
    """
    full, _ = normalize_key(key, shape)
    plans = [_dim_plan(e, c) for e, c in zip(full, chunks, strict=True)]
    box = tuple(p[0] for p in plans)
    relative = tuple(p[1] for p in plans)
    per_dim = [p[2] for p in plans]
    if any(not ids for ids in per_dim):
        return box, relative, []
    grid = chunk_grid(shape, chunks)
    flat = sorted(int(np.ravel_multi_index(c, grid)) for c in itertools.product(*per_dim))
    return box, relative, flat


def chunk_ids_along(entry: slice | int, chunk: int) -> list[int]:
    """Which chunk positions along one dimension an entry touches."""
    if isinstance(entry, int):
        return [entry // chunk]
    start, stop, step = entry.start, entry.stop, entry.step
    idx = range(start, stop, step)
    if len(idx) == 0:
        return []
    if abs(step) <= chunk:
        lo, hi = min(idx[0], idx[-1]), max(idx[0], idx[-1])
        return list(range(lo // chunk, hi // chunk + 1))
    return sorted({i // chunk for i in idx})


def chunk_grid(shape: Sequence[int], chunks: Sequence[int]) -> tuple[int, ...]:
    """Number of chunks along each dimension."""
    return tuple(math.ceil(s / c) if c else 0 for s, c in zip(shape, chunks, strict=True))


def touched_chunks(shape: Sequence[int], chunks: Sequence[int], key: Key) -> list[int]:
    """Flat (C-order) indices of the chunks *key* touches, ascending."""
    if len(shape) == 0:
        return [0]
    return key_plan(key, shape, chunks)[2]


def schunk_item_range(key: Key, nitems: int) -> slice:
    """The normalised item slice a key selects in an SChunk (one dimension)."""
    if len(key) > 1:
        raise SliceError(f"slice_ has {len(key)} entries for a 1-dimensional file")
    entry = key[0] if key else slice(None)
    if isinstance(entry, slice):
        return slice(*entry.indices(nitems))
    i = int(entry)
    if not -nitems <= i < nitems:
        raise SliceError(f"index {i} is out of range for {nitems} items")
    i %= nitems
    return slice(i, i + 1, 1)


def schunk_touched_chunks(items: slice, items_per_chunk: int) -> list[int]:
    """Chunks of an SChunk that a normalised item slice touches."""
    return chunk_ids_along(items, items_per_chunk)


def _index_array(entry: list) -> np.ndarray:
    """One fancy-index entry as an array; ragged or too deeply nested lists are refused."""
    try:
        # numpy refuses more than 64 dimensions (ValueError) and ragged lists (ValueError)
        return np.asarray(entry)
    except (ValueError, RecursionError, OverflowError) as exc:
        raise SliceError(f"indices entry is not an array of integers: {exc}") from None


def parse_indices(text: str | list | None) -> tuple | None:
    """Read the ``indices`` parameter: one entry per dimension (list, int, ``"a:b"`` or null)."""
    if text is None or text == "":
        return None
    try:
        entries = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as exc:
        raise SliceError(f"indices is not JSON: {exc}") from None
    except RecursionError:
        raise SliceError("indices nests too deeply: one list of integers per dimension") from None
    if not isinstance(entries, list):
        raise SliceError("indices must be a JSON list with one entry per dimension")
    return tuple(_index_entry(entry) for entry in entries)


def _index_entry(entry):
    """One dimension's entry of ``indices`` as a key part."""
    if entry is None:
        return slice(None)
    if isinstance(entry, bool):
        raise SliceError(f"indices entry {entry!r} is not an index")
    if isinstance(entry, int):
        if abs(entry) > MAX_INDEX:
            raise SliceError(f"indices entry {entry!r} is beyond 64 bits")
        return entry
    if isinstance(entry, str):
        parsed = parse_slice(entry)
        if len(parsed) != 1:
            raise SliceError(f"indices entry {entry!r} is not one slice")
        return parsed[0]
    if isinstance(entry, list):
        arr = _index_array(entry)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise SliceError(f"indices entry {str(entry)[:80]!r} must hold integers")
        return arr.astype(np.int64)
    raise SliceError(f"indices entry {str(entry)[:80]!r} is not an index")

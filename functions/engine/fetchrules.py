"""What a ``/api/fetch`` request may ask, checked before anything is read (Caterva2's rules).

Every parameter of a fetch narrows its answer, so one the server cannot honour
is refused rather than ignored: ``indices`` never combines with ``slice_``;
coordinates are integers (booleans are not: JSON ``true`` would silently read
element 1), within the dataset's bounds, at most :data:`MAX_COORDS` of them; and
the ``indices`` text is bounded (:data:`MAX_INDICES_CHARS`) before it is parsed,
as the request body is (:data:`MAX_FETCH_BODY`) before it is read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from catclient import wire
from functions.engine.errors import BadRequest

#: Longest ``indices`` text, characters (Caterva2's ``MAX_INDICES_CHARS``).
MAX_INDICES_CHARS = 8 << 20
#: Most coordinates one fetch gathers (Caterva2's ``MAX_FETCH_COORDS``).
MAX_COORDS = 1_000_000
#: Largest ``POST /api/fetch`` body, bytes: the longest ``indices`` plus room for the rest.
MAX_FETCH_BODY = MAX_INDICES_CHARS + (1 << 20)


def check_combination(slice_: str | None, indices: str | list | None) -> None:
    """Refuse ``indices`` together with ``slice_`` (400): which one would the answer follow?"""
    if indices not in (None, "") and slice_ not in (None, ""):
        raise BadRequest("indices and slice_ cannot be combined: give coordinates or a slice, not both")


def parse(indices: str | list | None) -> list | None:
    """The ``indices`` parameter as JSON, bounded before it is parsed (None when not given).

    Raises
    ------
    BadRequest
        Longer than :data:`MAX_INDICES_CHARS`, or not a JSON list.
    """
    if indices is None or indices == "":
        return None
    if isinstance(indices, list):
        return indices
    if len(indices) > MAX_INDICES_CHARS:
        raise BadRequest(
            f"indices is {len(indices):,} characters; a fetch takes at most {MAX_INDICES_CHARS:,}: "
            "ask in batches"
        )
    try:
        entries = json.loads(indices)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"indices is not JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("indices nests too deeply: one list of integers per dimension") from None
    if not isinstance(entries, list):
        raise BadRequest("indices must be a JSON list with one entry per dimension")
    return entries


def check_coordinates(entries: list, shape: Sequence[int]) -> None:
    """Refuse coordinates that are not integers, out of bounds, or too many (400).

    *entries* has one entry per dimension: a list of integer coordinates, an
    integer, a ``"a:b"`` slice or null (a whole dimension).
    """
    if len(entries) > len(shape):
        raise BadRequest(f"indices has {len(entries)} entries for {len(shape)} dimension(s)")
    count = 0
    for dim, (entry, size) in enumerate(zip(entries, shape, strict=False)):
        if entry is None or isinstance(entry, str):
            continue  # a whole dimension, or a slice: parsed (and checked) as slices are
        values = _integers(entry, dim)
        count += len(values) if isinstance(entry, list) else 0
        if count > MAX_COORDS:
            raise BadRequest(
                f"indices names more than {MAX_COORDS:,} coordinates, the most one fetch gathers: "
                "ask in batches"
            )
        for value in values:
            if not -size <= value < size:
                raise BadRequest(
                    f"index {value} is out of bounds: out of range for dimension {dim} of length {size}"
                )


def _integers(entry, dim: int) -> list[int]:
    """The integers of one dimension's entry (a list, possibly nested, or one integer)."""
    out: list[int] = []
    stack = [entry]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bool):
            raise BadRequest(f"indices entry {dim} holds {json.dumps(item)}: coordinates are only integers")
        elif isinstance(item, int):
            if abs(item) > 2**63 - 1:
                raise BadRequest(f"indices entry {dim} holds an integer beyond 64 bits")
            out.append(item)
        else:
            text = json.dumps(item)[:40]
            raise BadRequest(f"indices entry {dim} holds {text}, which is not an integer index")
    return out


@dataclass(frozen=True)
class FetchParams:
    """What ``/api/fetch`` was asked for (already-split strings, unparsed)."""

    slice_: str | None = None
    field: str | None = None
    filter: str | None = None
    indices: str | list | None = None

    def key(self, ndim: int) -> tuple:
        """The selection as a key: ``indices`` (fancy) when given, else ``slice_``.

        Raises
        ------
        catclient.wire.SliceError
            If either is malformed.
        """
        key = wire.parse_indices(self.indices)
        return key if key is not None else wire.parse_slice(self.slice_, ndim)

    def checked(self, shape: tuple[int, ...] | None) -> FetchParams:
        """These parameters with ``indices`` parsed, after Caterva2's rules (this module).

        *shape* is the n-d array's (None for SChunks and files: they take no coordinates).
        """
        check_combination(self.slice_, self.indices)
        entries = parse(self.indices)
        if entries is not None and shape is not None:
            check_coordinates(entries, shape)
        return FetchParams(self.slice_, self.field, self.filter, entries)

    @property
    def key_given(self) -> bool:
        """Whether a part of the dataset was asked for (not the whole of it)."""
        return bool(self.slice_ or self.indices or self.field or self.filter)

"""What a fetch selects: its parameters, and the ``filter`` over a structured array's fields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catclient import wire
from functions.engine import expr
from functions.engine.errors import BadRequest

__all__ = ["FetchParams", "apply_filter"]


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

    @property
    def key_given(self) -> bool:
        """Whether a part of the dataset was asked for (not the whole of it)."""
        return bool(self.slice_ or self.indices or self.field or self.filter)


def apply_filter(result: np.ndarray, text: str) -> np.ndarray:
    """The rows of *result* for which *text* (over its field names) is true; 400 for a bad filter."""
    names = set(result.dtype.fields)
    try:
        checked = expr.check(text, names, allow_reductions=False)
        mask = expr.evaluate(checked, {n: result[n] for n in checked.names})
    except expr.ExpressionError as exc:
        raise BadRequest(f"filter {text!r}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"filter {text!r} cannot be evaluated: {exc}") from None
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != result.shape:
        raise BadRequest(f"filter {text!r} must give one boolean per row")
    return result[mask]


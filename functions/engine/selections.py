"""The ``filter`` of a fetch over a structured array's fields (its parameters: :mod:`.fetchrules`)."""

from __future__ import annotations

import numpy as np

from functions.engine import expr
from functions.engine.errors import BadRequest
from functions.engine.fetchrules import FetchParams

__all__ = ["FetchParams", "apply_filter"]


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


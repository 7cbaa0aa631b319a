"""Operand-less array constructors in lazy expressions: ``linspace``, ``arange``, ``zeros``, ...

Blosc2 expressions may hold calls such as ``linspace(0, 1, 1000)`` that make an
array from literals alone.  Here every argument must be a literal (a number, a
tuple of integers for a shape, a dtype name, a boolean), so the result's shape
and dtype are known from the expression text, before anything is evaluated, and
the work budget bounds them like any operand.  A constructor is never built
whole: :class:`Generated` computes only the part of it a read asks for, from the
flat element index, with the formulas ``blosc2`` uses (``start + index * step``),
so results equal the ones a client computes locally.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

import numpy as np

from functions.engine.errors import ExpressionError

#: Most elements a constructor may describe: beyond, flat indices leave 64 bits (the
#: work budget refuses far smaller reads anyway).
MAX_ELEMENTS = 1 << 53
#: Most dimensions of a constructor's shape (Blosc2's own limit).
MAX_NDIM = 8
#: The dtype kinds a constructor may make (booleans, integers, floats, complex).
_KINDS = "biufc"

#: Parameters of each constructor, in positional order (names as blosc2 and numpy spell them).
PARAMETERS: dict[str, tuple[str, ...]] = {
    "linspace": ("start", "stop", "num", "dtype", "endpoint", "shape"),
    "arange": ("start", "stop", "step", "dtype", "shape"),
    "zeros": ("shape", "dtype"),
    "ones": ("shape", "dtype"),
    "empty": ("shape", "dtype"),
    "full": ("shape", "fill_value", "dtype"),
    "eye": ("N", "M", "k", "dtype"),
}
#: Parameters a call must give.
REQUIRED: dict[str, tuple[str, ...]] = {
    "linspace": ("start", "stop"),
    "arange": ("start",),
    "zeros": ("shape",),
    "ones": ("shape",),
    "empty": ("shape",),
    "full": ("shape", "fill_value"),
    "eye": ("N",),
}
NAMES = frozenset(PARAMETERS)


@dataclass(frozen=True)
class Generated:
    """A constructor's array, computed a slice at a time.

    Attributes
    ----------
    shape : tuple of int
        The array's shape.
    dtype : numpy.dtype
        Its dtype.
    start, step : number
        ``value = start + flat_index * step`` (ramps; ``step`` 0 for constant arrays).
    diagonal : int or None
        For ``eye``: the diagonal holding ones (the value is 1 where
        ``column - row == diagonal``, else 0).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    start: int | float | complex = 0
    step: int | float | complex = 0
    diagonal: int | None = None

    @property
    def chunks(self) -> None:
        """No stored chunks to follow."""
        return None

    def read(self, key: tuple) -> np.ndarray:
        """``self[key]``; *key* is full-length and normalised (ints and slices)."""
        axes = [_indices(n, k) for n, k in zip(self.shape, key, strict=True)]
        kept = [i for i, k in enumerate(key) if not isinstance(k, int | np.integer)]
        if self.diagonal is not None:
            rows, cols = _grid(axes, kept, 0), _grid(axes, kept, 1)
            return np.asarray(cols - rows == self.diagonal).astype(self.dtype)
        if self.step == 0:
            out_shape = tuple(len(axes[i]) for i in kept)
            return np.full(out_shape, self.start, dtype=self.dtype)
        flat = np.zeros((), dtype=np.int64)
        stride = 1
        for dim in reversed(range(len(self.shape))):
            flat = flat + _grid(axes, kept, dim) * stride
            stride *= self.shape[dim]
        with np.errstate(all="ignore"):
            return np.asarray(self.start + flat * self.step).astype(self.dtype)


def _indices(n: int, entry) -> np.ndarray:
    """The indices *entry* (an int or a slice) selects along a dimension of length *n* (only those)."""
    if isinstance(entry, slice):
        picked = range(n)[entry]
        return np.arange(picked.start, picked.stop, picked.step, dtype=np.int64)
    return np.asarray(int(entry) % n if n else int(entry), dtype=np.int64)


def _grid(axes: list[np.ndarray], kept: list[int], dim: int) -> np.ndarray:
    """Indices along *dim*, shaped to broadcast over the kept dimensions of a selection."""
    index = axes[dim]
    if dim not in kept:
        return np.asarray(index)
    shape = [1] * len(kept)
    shape[kept.index(dim)] = len(index)
    return index.reshape(shape)


# --------------------------------------------------------------------------- literals


def _literal(node: ast.AST, what: str):
    """The value of a literal argument: a number, bool, str, or a tuple/list of ints."""
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_literal(e, what) for e in node.elts)
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool | str | None):
            if sign != 1:
                raise ExpressionError(f"{what}: a sign before {value!r}")
            return value
        if isinstance(value, int | float | complex):
            return sign * value
    raise ExpressionError(f"{what} takes literal arguments only (numbers, shapes, dtype names)")


def _number(value, what: str, *, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, int | float | complex):
        raise ExpressionError(f"{what} must be a number, not {value!r}")
    if integer and not isinstance(value, int):
        raise ExpressionError(f"{what} must be an integer, not {value!r}")
    if isinstance(value, float | complex) and not np.isfinite(value):
        raise ExpressionError(f"{what} must be finite, not {value!r}")
    if isinstance(value, int) and abs(value) > 2**63 - 1:
        raise ExpressionError(f"{what} is too large (beyond 64 bits)")
    return value


def _shape(value, what: str) -> tuple[int, ...]:
    dims = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(dims, tuple) or len(dims) > MAX_NDIM:
        raise ExpressionError(f"{what}: shape must be an integer or a tuple of at most {MAX_NDIM} integers")
    for n in dims:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ExpressionError(f"{what}: shape entries must be non-negative integers, not {n!r}")
    if math.prod(dims) > MAX_ELEMENTS:
        raise ExpressionError(f"{what}: {math.prod(dims):,} elements is more than {MAX_ELEMENTS:,}")
    return tuple(dims)


def _dtype(value, what: str) -> np.dtype | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ExpressionError(f"{what}: dtype must be a name such as 'float32', not {value!r}")
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise ExpressionError(f"{what}: unknown dtype {value!r}") from None
    if dtype.kind not in _KINDS:
        raise ExpressionError(f"{what}: dtype {value!r} is not a boolean or numeric type")
    return dtype


def _arguments(node: ast.Call) -> dict[str, object]:
    """The call's arguments by parameter name, all literals; refusals name what is wrong."""
    name = node.func.id
    params = PARAMETERS[name]
    if len(node.args) > len(params):
        raise ExpressionError(f"{name}() takes at most {len(params)} arguments")
    args = {p: _literal(a, f"{name}()") for p, a in zip(params, node.args, strict=False)}
    for kw in node.keywords:
        if kw.arg not in params:
            raise ExpressionError(f"{name}() has no parameter {kw.arg!r}")
        if kw.arg in args:
            raise ExpressionError(f"{name}() got {kw.arg!r} twice")
        args[kw.arg] = _literal(kw.value, f"{name}()")
    missing = [p for p in REQUIRED[name] if p not in args]
    if missing:
        raise ExpressionError(f"{name}() needs {', '.join(missing)}")
    return args


# --------------------------------------------------------------------------- constructors


def build(node: ast.Call) -> Generated:
    """The :class:`Generated` array a constructor call describes (nothing is allocated).

    Raises
    ------
    ExpressionError
        If an argument is not a literal, or the call could not make an array.
    """
    args = _arguments(node)
    name = node.func.id
    return _BUILDERS[name](args, f"{name}()")


def _linspace(args: dict, what: str) -> Generated:
    start, stop = _number(args["start"], f"{what} start"), _number(args["stop"], f"{what} stop")
    endpoint = args.get("endpoint", True)
    if not isinstance(endpoint, bool):
        raise ExpressionError(f"{what}: endpoint must be True or False")
    num = args.get("num")
    shape = _shape(args["shape"], what) if args.get("shape") is not None else None
    if num is None and shape is None:
        raise ExpressionError(f"{what} needs num or shape")
    num = math.prod(shape) if num is None else _number(num, f"{what} num", integer=True)
    shape = _shape(num, what) if shape is None else shape
    if math.prod(shape) != num:
        raise ExpressionError(f"{what}: shape {shape} does not hold num={num} elements")
    complex_ = any(isinstance(v, complex) for v in (start, stop))
    dtype = _dtype(args.get("dtype"), what) or np.dtype(np.complex128 if complex_ else np.float64)
    items = num - 1 if endpoint else num
    if complex_:
        step = (complex(stop) - complex(start)) / items if items > 0 else 0j
        return Generated(shape, dtype, complex(start), step)
    # blosc2's ramp: float(start) + index * float(step), in float64
    step = (float(stop) - float(start)) / float(items) if items > 0 else 0.0
    return Generated(shape, dtype, float(start), step)


def _arange(args: dict, what: str) -> Generated:
    start, stop, step = args["start"], args.get("stop"), args.get("step", 1)
    step = 1 if step is None else step
    if stop is None:
        start, stop = 0, start
    start, stop = _number(start, f"{what} start"), _number(stop, f"{what} stop")
    step = _number(step, f"{what} step")
    if isinstance(start, complex) or isinstance(stop, complex) or isinstance(step, complex):
        raise ExpressionError(f"{what} takes real numbers")
    if step == 0:
        raise ExpressionError(f"{what}: step cannot be zero")
    num = max(math.ceil((stop - start) / step), 0)
    shape = _shape(args["shape"], what) if args.get("shape") is not None else _shape(num, what)
    if math.prod(shape) != num:
        raise ExpressionError(f"{what}: shape {shape} does not hold its {num} elements")
    floating = any(isinstance(v, float) for v in (start, stop, step))
    dtype = _dtype(args.get("dtype"), what) or np.dtype(np.float64 if floating else np.int64)
    return Generated(shape, dtype, start, step)


def _filled(value):
    def make(args: dict, what: str) -> Generated:
        shape = _shape(args["shape"], what)
        fill = value
        if value is None:
            fill = args["fill_value"]
            fill = fill if isinstance(fill, bool) else _number(fill, f"{what} fill_value")
        default = np.asarray(fill).dtype if value is None else np.dtype(np.float64)
        dtype = _dtype(args.get("dtype"), what) or default
        return Generated(shape, dtype, fill, 0)

    return make


def _eye(args: dict, what: str) -> Generated:
    rows = _number(args["N"], f"{what} N", integer=True)
    cols = args.get("M")
    cols = rows if cols is None else _number(cols, f"{what} M", integer=True)
    k = _number(args.get("k", 0), f"{what} k", integer=True)
    shape = _shape((rows, cols), what)
    dtype = _dtype(args.get("dtype"), what) or np.dtype(np.float64)
    return Generated(shape, dtype, diagonal=k)


_BUILDERS = {
    "linspace": _linspace,
    "arange": _arange,
    "zeros": _filled(0),
    "ones": _filled(1),
    "empty": _filled(0),  # blosc2 leaves it uninitialised; zeros are one of its possible values
    "full": _filled(None),
}
_BUILDERS["eye"] = _eye

"""Operand subscripts as views: ``x[0:N]`` read box by box, never whole.

A reduction's argument may slice its operands (``sum(x[0:N])``).  Each compute
invocation of a fanned-out reduction evaluates only its boxes of the argument;
reading the whole subscript first (as :func:`functions.engine.lazy.extract`
does for a one-process evaluation) would make every invocation read all of it.
:func:`as_views` instead replaces each subscript by a :class:`Sliced` operand,
whose reads are composed with the subscript and so touch only the chunks of
the box asked for.  :func:`evaluate_chunkwise` evaluates a slice of an
elementwise expression the same way, box by box, into a compressed result.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping

import numpy as np

from functions.engine.expr import CONSTRUCTORS, WHOLE, ExpressionError
from functions.engine.lazy import ArraySource, _literal_key, evaluate_elementwise, full_key, infer


class Sliced:
    """``base[key]`` as an operand: ``read(k)`` reads ``base[key][k]`` from *base* directly.

    Parameters
    ----------
    base : ArraySource
        A stored operand.
    key : tuple
        A full, normalised key of ints and slices (see :func:`functions.engine.lazy.full_key`).

    """

    def __init__(self, base: ArraySource, key: tuple) -> None:
        self.base = base
        self.key = key
        shape = tuple(base.shape)
        self._ranges = [
            range(*slice(e.start, e.stop, e.step).indices(n)) if isinstance(e, slice) else e
            for e, n in zip(key, shape, strict=True)
        ]
        self.shape = tuple(len(r) for r in self._ranges if isinstance(r, range))
        self.dtype = base.dtype
        chunks = getattr(base, "chunks", None)
        # The base's chunks still tile the view when it only drops a prefix of whole chunks
        aligned = chunks is not None and all(
            isinstance(r, range) and r.step == 1 and r.start % c == 0
            for r, c in zip(self._ranges, chunks, strict=True)
        )
        self.chunks = tuple(chunks) if aligned else None

    def read(self, key: tuple) -> np.ndarray:
        """``view[key]`` (a full key over the view's shape), read as one key of the base."""
        key = full_key(key, self.shape)
        sub = iter(key)
        out = []
        for r in self._ranges:
            if not isinstance(r, range):
                out.append(r)  # an int of the subscript: that dimension is gone from the view
                continue
            entry = next(sub)
            if isinstance(entry, slice):
                part = r[slice(entry.start, entry.stop, entry.step)]
                out.append(_as_slice(part))
            else:
                out.append(r[entry])
        return self.base.read(tuple(out))


def _as_slice(r: range) -> slice:
    """A range of non-negative indices as the slice numpy reads the same elements with."""
    if len(r) == 0:
        return slice(0, 0, 1)
    stop = r.stop if r.stop >= 0 else None  # below 0 going backwards: "through index 0"
    return slice(r.start, stop, r.step)


def as_views(tree: ast.AST, sources: Mapping[str, ArraySource]) -> tuple[ast.AST, dict[str, Sliced]]:
    """*tree* with every operand subscript replaced by a :class:`Sliced` operand (nothing is read).

    Returns
    -------
    (ast.AST, dict)
        The new tree and the views it names (``_s0``, ``_s1`` ...).

    Raises
    ------
    ExpressionError
        If a subscript does not fit its operand.

    """
    views: dict[str, Sliced] = {}

    class _View(ast.NodeTransformer):
        def visit_Subscript(self, node: ast.Subscript) -> ast.AST:  # noqa: N802 - ast API
            source = sources[node.value.id]
            try:
                key = full_key(_literal_key(node.slice), tuple(source.shape))
            except ExpressionError as exc:
                raise ExpressionError(f"{ast.unparse(node)!r}: {exc}") from None
            name = f"_s{len(views)}"
            views[name] = Sliced(source, key)
            return ast.Name(id=name, ctx=ast.Load())

    new = _View().visit(ast.parse(ast.unparse(tree), mode="eval").body)
    return ast.fix_missing_locations(new), views


# --------------------------------------------------------------------------- chunk-wise slices

#: Elements of the result evaluated at once by :func:`evaluate_chunkwise` (8 MB of float64):
#: what bounds its memory, besides the compressed result.
RESULT_BOX_ELEMENTS = 1 << 20


class _Expression:
    """A reduction-free, subscript-free expression as a read-only operand (evaluated per read)."""

    def __init__(self, tree: ast.AST, sources: Mapping[str, ArraySource], shape: tuple, dtype) -> None:
        self.tree, self.sources, self.shape, self.dtype = tree, sources, shape, dtype

    def read(self, key: tuple) -> np.ndarray:
        value = evaluate_elementwise(self.tree, self.sources, self.shape, key)
        return np.asarray(value).astype(self.dtype, copy=False)


def _reshapes(checked) -> bool:
    """Whether *checked* calls a join, ``matmul`` or a constructor."""
    special = set(WHOLE) | set(CONSTRUCTORS)
    calls = (n for n in ast.walk(checked.tree) if isinstance(n, ast.Call))
    return any(getattr(n.func, "id", None) in special for n in calls)


def _box_rows(view: Sliced, sources: Mapping[str, ArraySource], shape: tuple[int, ...]) -> int:
    """Rows of the result per box: about :data:`RESULT_BOX_ELEMENTS`, whole operand chunks when they line up.

    A box that starts on an operand's chunk boundary and spans whole chunks of it is
    decompressed straight into place (:class:`catclient.wire.sink.ArraySink`), with no
    chunk decoded twice for two boxes.
    """
    rest = math.prod(view.shape[1:]) or 1
    rows = max(1, min(view.shape[0], RESULT_BOX_ELEMENTS // rest))
    first = view.key[0] if view.key else None
    if not isinstance(first, slice) or first.step != 1:
        return rows
    for source in sources.values():
        chunks = getattr(source, "chunks", None)
        if chunks and tuple(source.shape) == tuple(shape) and first.start % chunks[0] == 0:
            if rows > chunks[0]:
                return rows - rows % chunks[0]
            return rows
    return rows


def evaluate_chunkwise(checked, sources: Mapping[str, ArraySource], key: tuple, cparams_for):
    """``expression[key]`` of a reduction-free expression, box by box, into a compressed NDArray.

    Memory holds the compressed result and one box (:data:`RESULT_BOX_ELEMENTS`
    elements) of the result and of each operand at a time: a 50 MB slice of
    ``x + 1`` never holds 50 MB of ``x``.  Each box reads only the chunks of
    its part of the operands (subscripts included, see :class:`Sliced`).
    ``cparams_for(itemsize)`` gives the result's compression.

    Returns
    -------
    blosc2.NDArray or None
        None for a 0-d result (nothing to split), and for joins and constructors (a box
        of their result is not the same box of their operands): the caller evaluates those whole.

    """
    import blosc2

    if _reshapes(checked):
        return None
    shape, dtype = infer(checked, sources)
    tree, views = as_views(checked.tree.body, sources)
    view = Sliced(_Expression(tree, {**sources, **views}, shape, dtype), full_key(key, shape))
    if not view.shape or 0 in view.shape:
        return None
    rows = _box_rows(view, {**sources, **views}, shape)
    chunks = (rows, *view.shape[1:])
    # Sparse, then framed once: a contiguous one in memory grows (and is copied) with
    # every chunk written, which measured no faster for a 50 MB result (143 vs 142 ms)
    out = blosc2.empty(view.shape, dtype=dtype, chunks=chunks, cparams=cparams_for(max(1, dtype.itemsize)))
    for start in range(0, view.shape[0], rows):
        box = (slice(start, min(start + rows, view.shape[0])),) + tuple(slice(None) for _ in view.shape[1:])
        out[box] = view.read(box)
    return out

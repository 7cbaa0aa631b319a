"""Reductions of lazy expressions, computed by parts: boxes, partials, exact combination.

A reduction over a large argument is split into chunk-aligned boxes; each box
gives a *partial* (sums, extrema, counts, or the mean and squared deviations of
Chan's parallel variance) that combines exactly with its neighbours', so groups
of boxes can run in separate compute invocations (:mod:`functions.engine.compute`).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from catclient.wire import human_bytes
from functions.engine import expr
from functions.engine.errors import TooLarge
from functions.engine.lazy import ArraySource, evaluate_elementwise, infer_tree

#: Elements per box when a reduction argument has no stored chunking to follow.
DEFAULT_BOX_ELEMENTS = 1 << 20

#: Combining two partial results of a reduction along the reduced axis
_COMBINE: dict[str, Callable] = {
    "sum": np.add,
    "prod": np.multiply,
    "min": np.minimum,
    "max": np.maximum,
    "any": np.logical_or,
    "all": np.logical_and,
}


def partial_reduce(name: str, axis: int | None, value: np.ndarray) -> dict[str, np.ndarray]:
    """The partial result of reduction *name* over one box (keepdims, so boxes can be placed)."""
    value = np.asarray(value)
    axes = None if axis is None else (axis,)
    if name in _COMBINE:
        return {"v": np.asarray(expr.REDUCTIONS[name](value, axis=axes, keepdims=True))}
    count = np.asarray(value.size if axes is None else value.shape[axis], dtype=np.int64)
    with np.errstate(all="ignore"):
        if name == "mean":
            return {
                "s": np.sum(value, axis=axes, keepdims=True, dtype=np.result_type(value, np.float64)),
                "n": count,
            }
        mean = np.mean(value, axis=axes, keepdims=True, dtype=np.result_type(value, np.float64))
        m2 = np.sum(np.abs(value - mean) ** 2, axis=axes, keepdims=True)
    return {"m": mean, "q": m2, "n": count}


def combine_partials(name: str, a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Combine two partials of the same output region (exact; Chan et al. for variance)."""
    if name in _COMBINE:
        return {"v": _COMBINE[name](a["v"], b["v"])}
    if name == "mean":
        return {"s": a["s"] + b["s"], "n": a["n"] + b["n"]}
    na, nb = a["n"].astype(np.float64), b["n"].astype(np.float64)
    n = na + nb
    delta = b["m"] - a["m"]
    mean = a["m"] + delta * (nb / n)
    q = a["q"] + b["q"] + np.abs(delta) ** 2 * (na * nb / n)
    return {"m": mean, "q": q, "n": a["n"] + b["n"]}


def finish(name: str, partial: dict[str, np.ndarray]) -> np.ndarray:
    """The reduction's value from its fully combined partial."""
    with np.errstate(all="ignore"):
        if name in _COMBINE:
            return partial["v"]
        if name == "mean":
            return partial["s"] / partial["n"]
        var = partial["q"] / partial["n"]
    return np.sqrt(var) if name == "std" else var


def boxes(shape: tuple[int, ...], chunks: tuple[int, ...] | None) -> list[tuple[slice, ...]]:
    """Chunk-aligned boxes covering *shape* (follow stored chunks when there are some)."""
    if not shape:
        return [()]
    if chunks is None or len(chunks) != len(shape):
        rest = math.prod(shape[1:]) or 1
        rows = max(1, DEFAULT_BOX_ELEMENTS // rest)
        chunks = (rows, *shape[1:])
    ranges = [
        [slice(s, min(s + c, n)) for s in range(0, n, c)] or [slice(0, 0)]
        for n, c in zip(shape, chunks, strict=True)
    ]
    grid = [()]
    for r in ranges:
        grid = [g + (s,) for g in grid for s in r]
    return grid


def place(name: str, axis: int | None, shape: tuple[int, ...], parts: list[tuple[tuple, dict]]) -> np.ndarray:
    """Assemble box partials (``(box, partial)``) into the reduction's value over *shape*."""
    regions: dict[tuple, dict] = {}
    for box, partial in parts:
        if axis is None:
            region = ()
        else:
            region = tuple((s.start, s.stop) for i, s in enumerate(box) if i != axis)
        regions[region] = (
            partial if region not in regions else combine_partials(name, regions[region], partial)
        )
    if axis is None:
        return np.asarray(finish(name, regions[()])).reshape(())
    out_shape = shape[:axis] + shape[axis + 1 :]
    out = None
    for region, partial in regions.items():
        value = np.squeeze(finish(name, partial), axis=axis)
        if out is None:
            out = np.empty(out_shape, dtype=value.dtype)
        out[tuple(slice(a, b) for a, b in region)] = value
    return out if out is not None else np.empty(out_shape)


def reduce_locally(
    name: str, axis: int | None, argument: ast.AST, sources: Mapping[str, ArraySource]
) -> np.ndarray:
    """One reduction computed box by box in this process (what each compute invocation does)."""
    shape, _ = infer_tree(argument, sources)
    parts = reduction_parts(name, axis, argument, sources, shape, boxes(shape, chunking_for(shape, sources)))
    return place(name, axis, shape, parts)


def reduction_parts(name, axis, argument, sources, shape, box_list) -> list[tuple[tuple, dict]]:
    """Partials of *argument* reduced over each box in *box_list*."""
    out = []
    for box in box_list:
        value = evaluate_elementwise(argument, sources, shape, box)
        out.append((box, partial_reduce(name, axis, value)))
    return out


def chunking_for(shape: tuple[int, ...], sources: Mapping[str, ArraySource]) -> tuple[int, ...] | None:
    """Chunks of a stored operand with exactly *shape*, so boxes read whole chunks."""
    for source in sources.values():
        chunks = getattr(source, "chunks", None)
        if chunks is not None and tuple(source.shape) == tuple(shape):
            return tuple(chunks)
    return None


# --------------------------------------------------------------------------- work budget


@dataclass(frozen=True)
class Work:
    """What evaluating an expression costs, estimated from shapes alone.

    Attributes
    ----------
    elements : int
        Elements × operands evaluated: each reduction's argument in full (its
        size times the operands it reads), each operand subscript, and the
        selected part of the result times the operands it reads.
    nbytes : int
        Bytes held at once by the elementwise part: every operand's selected
        part plus the result.
    """

    elements: int
    nbytes: int


def estimate_work(
    tree: ast.AST, sources: Mapping[str, ArraySource], key: tuple, shape: tuple[int, ...]
) -> Work:
    """The :class:`Work` of ``result[key]`` for the flat expression *tree* (nothing is read)."""
    selected = math.prod(np.broadcast_to(np.empty((), bool), shape)[key].shape) if shape else 1
    elements = 0
    nbytes = selected * infer_tree(tree, sources)[1].itemsize

    def operands_in(node: ast.AST) -> int:
        return sum(1 for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in sources)

    def walk(node: ast.AST, outer: bool) -> None:
        nonlocal elements, nbytes
        if isinstance(node, ast.Call) and node.func.id in expr.REDUCTIONS:
            argument = node.args[0]
            elements += math.prod(infer_tree(argument, sources)[0]) * max(1, operands_in(argument))
            walk(argument, False)
        elif isinstance(node, ast.Subscript):
            elements += math.prod(infer_tree(node, sources)[0])
        elif isinstance(node, ast.Call) and node.func.id in expr.WHOLE:
            cost = _whole_cost(node, sources, operands_in(node))
            elements, nbytes = elements + cost.elements, nbytes + cost.nbytes
            for argument in node.args[0].elts if node.func.id in expr.JOINS else node.args:
                walk(argument, False)
        elif isinstance(node, ast.Call) and node.func.id in expr.CONSTRUCTORS:
            if outer:  # computed for the selected part only (inside a reduction: counted there)
                elements += selected
                nbytes += selected * infer_tree(node, sources)[1].itemsize
        elif isinstance(node, ast.Name) and node.id in sources:
            if outer:
                elements += selected
                nbytes += selected * np.dtype(sources[node.id].dtype).itemsize
        else:
            for child in ast.iter_child_nodes(node):
                walk(child, outer)

    walk(tree, True)
    return Work(elements, nbytes)


def _whole_cost(node: ast.Call, sources: Mapping[str, ArraySource], operands: int) -> Work:
    """What a join or ``matmul`` costs by itself: evaluated whole, its result held at once."""
    shape, dtype = infer_tree(node, sources)
    size = math.prod(shape)
    if node.func.id in expr.JOINS:  # every element of the joined arrays, once per operand read
        return Work(size * max(1, operands), size * dtype.itemsize)
    # Both arguments whole, then a multiply-add per result element and inner index
    inner = infer_tree(node.args[0], sources)[0][-1]
    arguments = sum(math.prod(infer_tree(a, sources)[0]) for a in node.args)
    return Work(size * inner + arguments, size * dtype.itemsize)


def check_work(work: Work, *, max_elements: int, max_nbytes: int) -> None:
    """Refuse, before any evaluation, an expression read over the budget of one request.

    Raises
    ------
    TooLarge
        Over ``max_elements`` (elements × operands) or ``max_nbytes`` (0: unbounded).
    """
    if max_elements and work.elements > max_elements:
        raise TooLarge(
            f"this expression would evaluate {work.elements:,} elements x operands (reductions over whole "
            f"operands included), over the {max_elements:,} one request may (CAT_MAX_WORK): ask for a "
            f"smaller slice, or reduce over slices of the operands"
        )
    if max_nbytes and work.nbytes > max_nbytes:
        raise TooLarge(
            f"this expression read would hold {human_bytes(work.nbytes)} of operands and result at once, "
            f"over the {human_bytes(max_nbytes)} one request may (CAT_MAX_READ_NBYTES): ask for a smaller "
            f"slice, or read it chunk by chunk via /api/chunk"
        )

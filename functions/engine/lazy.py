"""Lazy expressions: inference, inlining, sliced evaluation and fanned-out reductions.

A lazy expression is stored as a definition only (docs/ARCHITECTURE.md, "Lazy expressions").  Reading a slice
of it works in three steps, all on already allow-list-checked ASTs
(:mod:`functions.engine.expr`):

1. **Inline**: operands that are themselves lazy expressions are replaced by
   their (parenthesised) expressions, recursively, with cycle detection, so
   evaluation only ever sees stored datasets pinned at exact versions.
2. **Extract**: reductions and operand subscripts are computed first, innermost
   first, and replaced by *virtual* operands (small in-memory arrays).  A
   reduction over a large argument is split into chunk-aligned boxes whose
   partial results are combined exactly (sums, extrema, counts, and Chan's
   parallel variance); each group of boxes can run in its own compute invocation.
3. **Slice**: what is left is elementwise, so the requested slice of the result
   maps onto a slice of each operand under numpy's broadcasting rules; only the
   chunks those slices touch are read.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from functions.engine import constructors, expr
from functions.engine.expr import ExpressionError

#: Deepest chain of expressions over expressions (each level is one inlining).
MAX_INLINE_DEPTH = 16


# --------------------------------------------------------------------------- sources


class ArraySource(Protocol):
    """Something with a shape and dtype that can return a numpy slice of itself."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def read(self, key: tuple) -> np.ndarray:
        """``self[key]`` as numpy; *key* is full-length (one int or slice per dimension)."""
        ...


@dataclass
class InMemory:
    """A virtual operand: an intermediate result held in memory."""

    value: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:  # noqa: D102
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:  # noqa: D102
        return self.value.dtype

    @property
    def chunks(self) -> tuple[int, ...] | None:  # noqa: D102
        return None

    def read(self, key: tuple) -> np.ndarray:  # noqa: D102
        return np.asarray(self.value[key]) if key else np.asarray(self.value)


# --------------------------------------------------------------------------- inference


def _literal_key(node: ast.AST) -> tuple:
    """A subscript's key from its AST (ints, slices, tuples of those; checked already)."""

    def one(n):
        if isinstance(n, ast.Slice):
            return slice(*(None if p is None else expr.literal_int(p) for p in (n.lower, n.upper, n.step)))
        return expr.literal_int(n)

    if isinstance(node, ast.Tuple):
        return tuple(one(e) for e in node.elts)
    return (one(node),)


def _axis(node: ast.Call) -> int | None:
    for kw in node.keywords:
        return expr.literal_int(kw.value)
    return None


def _norm_axis(axis: int | None, ndim: int, name: str) -> int | None:
    if axis is None:
        return None
    if not -ndim <= axis < ndim:
        raise ExpressionError(f"{name}(axis={axis}) is out of range for {ndim} dimension(s)")
    return axis % ndim


def _broadcast(shapes: Sequence[tuple[int, ...]], where: str) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ExpressionError(f"shapes {', '.join(map(str, shapes))} do not broadcast in {where!r}") from None


def infer(checked: expr.Checked, infos: Mapping[str, ArraySource]) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an expression's result, without evaluating it.

    Shapes follow numpy's broadcasting; dtypes come from evaluating the
    expression on one-element samples of each operand's dtype (numpy's own
    promotion rules, Python literals staying weak as in NEP 50).
    """

    def walk(node) -> tuple[tuple[int, ...], object]:
        if isinstance(node, ast.Constant):
            return (), node.value
        if isinstance(node, ast.Name):
            info = infos[node.id]
            return tuple(info.shape), np.ones((), dtype=info.dtype)
        if isinstance(node, ast.Subscript):
            info = infos[node.value.id]
            key = _literal_key(node.slice)
            try:
                shape = np.broadcast_to(np.empty((), bool), info.shape)[key].shape
            except IndexError as exc:
                raise ExpressionError(f"{ast.unparse(node)!r}: {exc}") from None
            return shape, np.ones((), dtype=info.dtype)
        if isinstance(node, ast.Call) and node.func.id in expr.CONSTRUCTORS:
            generated = constructors.build(node)
            return generated.shape, np.ones((), dtype=generated.dtype)
        if isinstance(node, ast.Call) and node.func.id in expr.JOINS:
            walked = [walk(e) for e in node.args[0].elts]
            return _joined_shape(node, [w[0] for w in walked]), _joined_sample([w[1] for w in walked])
        if isinstance(node, ast.Call) and node.func.id in expr.LINALG:
            walked = [walk(a) for a in node.args]
            return matmul_shape(*(w[0] for w in walked)), _joined_sample([w[1] for w in walked])
        if isinstance(node, ast.Call) and node.func.id in expr.REDUCTIONS:
            shape, sample = walk(node.args[0])
            axis = _norm_axis(_axis(node), len(shape), node.func.id)
            out = () if axis is None else shape[:axis] + shape[axis + 1 :]
            value = expr.REDUCTIONS[node.func.id](np.asarray(sample).reshape(1))
            return out, np.ones((), dtype=np.asarray(value).dtype)
        children = _operands_of(node)
        walked = [walk(c) for c in children]
        shape = _broadcast([w[0] for w in walked], ast.unparse(node))
        with np.errstate(all="ignore"):
            sample = _apply(node, [w[1] for w in walked])
        return shape, sample

    shape, sample = walk(checked.tree.body)
    return shape, np.asarray(sample).dtype


def _joined_shape(node: ast.Call, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """The shape of ``concat``/``stack`` over arrays of *shapes* (numpy's rules, said plainly)."""
    name, first = node.func.id, shapes[0]
    if any(len(s) != len(first) for s in shapes):
        raise ExpressionError(f"{name}() joins arrays of one number of dimensions, not {shapes}")
    if name == "stack":
        if any(s != first for s in shapes):
            raise ExpressionError(f"stack() joins arrays of one shape, not {shapes}")
        axis = _norm_axis(expr.join_axis(node), len(first) + 1, name)
        return first[:axis] + (len(shapes),) + first[axis:]
    if not first:
        raise ExpressionError(f"{name}() cannot join scalars (zero-dimensional arrays)")
    axis = _norm_axis(expr.join_axis(node), len(first), name)
    if any(s[:axis] + s[axis + 1 :] != first[:axis] + first[axis + 1 :] for s in shapes):
        raise ExpressionError(f"{name}() shapes {shapes} differ outside axis {axis}")
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1 :]


def matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of ``matmul(a, b)`` over arrays of shapes *a* and *b* (numpy's rules, said plainly).

    A 1-D operand is a row (left) or a column (right) whose added dimension is dropped
    again; the dimensions before the last two broadcast.
    """
    if not a or not b:
        raise ExpressionError(f"matmul() needs arrays of one dimension or more, not shapes {a} and {b}")
    left, right = (1, *a) if len(a) == 1 else a, (*b, 1) if len(b) == 1 else b
    if left[-1] != right[-2]:
        raise ExpressionError(f"matmul() of shapes {a} and {b}: {left[-1]} columns against {right[-2]} rows")
    batch = _broadcast([left[:-2], right[:-2]], "matmul()")
    out = (*batch, left[-2], right[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _joined_sample(samples: list) -> np.ndarray:
    return np.ones((), dtype=np.result_type(*[np.asarray(s).dtype for s in samples]))


def infer_tree(tree: ast.AST, sources: Mapping[str, ArraySource]) -> tuple[tuple[int, ...], np.dtype]:
    """:func:`infer` for an already checked sub-expression (an AST node)."""
    return infer(expr.Checked("", ast.Expression(body=tree), frozenset(), False), sources)


def _operands_of(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.BinOp):
        return [node.left, node.right]
    if isinstance(node, ast.UnaryOp):
        return [node.operand]
    if isinstance(node, ast.BoolOp):
        return list(node.values)
    if isinstance(node, ast.Compare):
        return [node.left, *node.comparators]
    if isinstance(node, ast.Call):
        return list(node.args)
    raise ExpressionError(f"cannot infer {type(node).__name__}")


def _apply(node: ast.AST, values: list) -> object:
    """Evaluate one node on already-evaluated children (used for dtype samples)."""
    names = {f"_{i}": v for i, v in enumerate(values)}
    rebuilt = _rebuild(node, [ast.Name(id=n, ctx=ast.Load()) for n in names])
    checked = expr.Checked(
        text="", tree=ast.Expression(body=rebuilt), names=frozenset(names), has_reduction=False
    )
    return expr.evaluate(checked, names)


def _rebuild(node: ast.AST, children: list[ast.AST]) -> ast.AST:
    if isinstance(node, ast.BinOp):
        return ast.BinOp(left=children[0], op=node.op, right=children[1])
    if isinstance(node, ast.UnaryOp):
        return ast.UnaryOp(op=node.op, operand=children[0])
    if isinstance(node, ast.BoolOp):
        return ast.BoolOp(op=node.op, values=children)
    if isinstance(node, ast.Compare):
        return ast.Compare(left=children[0], ops=node.ops, comparators=children[1:])
    return ast.Call(func=node.func, args=children, keywords=node.keywords)


# --------------------------------------------------------------------------- inlining


@dataclass(frozen=True)
class Definition:
    """A stored lazy expression: text plus operand aliases → dataset paths."""

    expression: str
    operands: Mapping[str, str]


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: Mapping[str, ast.AST]) -> None:
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.AST:  # noqa: N802 - ast API
        replacement = self.mapping.get(node.id)
        return replacement if replacement is not None else node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:  # noqa: N802 - ast API
        target = self.mapping.get(node.value.id) if isinstance(node.value, ast.Name) else None
        if isinstance(target, ast.Name) or target is None:
            return self.generic_visit(node)
        # ``y[0:2]`` where ``y`` is itself an expression: slicing a computed operand
        raise ExpressionError(f"{ast.unparse(node)!r} slices a lazy expression; slice its operands instead")


def inline(
    definition: Definition,
    resolve: Callable[[str], Definition | None],
    *,
    path: str | None = None,
    _stack: tuple[str, ...] = (),
) -> tuple[str, dict[str, str]]:
    """Flatten expressions over expressions into one expression over stored datasets.

    Parameters
    ----------
    definition : Definition
        The expression to flatten.
    resolve : callable
        ``resolve(path)`` returns the :class:`Definition` stored at *path* if it is
        a lazy expression, None for a stored dataset (and raises for missing ones).
    path : str, optional
        Where *definition* itself is stored (so a cycle back to it is caught).

    Returns
    -------
    (str, dict)
        The flat expression and its operands (fresh aliases → dataset paths).

    Raises
    ------
    ExpressionError
        On a cycle (naming it) or a chain deeper than :data:`MAX_INLINE_DEPTH`.
    """
    if path is not None and not _stack:
        _stack = (path,)
    if len(_stack) > MAX_INLINE_DEPTH:
        raise ExpressionError(f"expressions nest more than {MAX_INLINE_DEPTH} levels deep")
    tree = ast.parse(definition.expression, mode="eval")
    mapping: dict[str, ast.AST] = {}
    flat: dict[str, str] = {}
    for alias, path in definition.operands.items():
        inner = resolve(path)
        if inner is None:
            name = f"o{len(flat)}"
            flat[name] = path
            mapping[alias] = ast.Name(id=name, ctx=ast.Load())
            continue
        if path in _stack:
            cycle = " -> ".join((*_stack, path))
            raise ExpressionError(f"lazy expressions form a cycle: {cycle}")
        text, operands = inline(inner, resolve, _stack=(*_stack, path))
        sub_tree = ast.parse(text, mode="eval").body
        renames = {}
        for inner_alias, inner_path in operands.items():
            existing = next((a for a, p in flat.items() if p == inner_path), None)
            name = existing or f"o{len(flat)}"
            flat[name] = inner_path
            renames[inner_alias] = ast.Name(id=name, ctx=ast.Load())
        mapping[alias] = _Rename(renames).visit(sub_tree)
    # Same dataset under two aliases: one operand, read once
    dedup: dict[str, str] = {}
    for name, path in list(flat.items()):
        first = dedup.setdefault(path, name)
        if first != name:
            del flat[name]
            for alias, node in mapping.items():
                if isinstance(node, ast.Name) and node.id == name:
                    mapping[alias] = ast.Name(id=first, ctx=ast.Load())
    new = _Rename(mapping).visit(tree)
    return ast.unparse(ast.fix_missing_locations(new)), flat


# --------------------------------------------------------------------------- slicing


def operand_key(result_key: tuple, result_shape: tuple[int, ...], operand_shape: tuple[int, ...]) -> tuple:
    """The slice of an operand that a full-length *result_key* needs, under broadcasting.

    Operand dimensions align to the right; a dimension of size 1 that the result
    broadcasts is read whole (or at 0 for an integer entry) so numpy broadcasts it
    again after evaluation.
    """
    offset = len(result_shape) - len(operand_shape)
    key = []
    for dim, size in enumerate(operand_shape):
        entry = result_key[offset + dim]
        if size == 1 and result_shape[offset + dim] != 1:
            key.append(0 if isinstance(entry, int | np.integer) else slice(None))
        else:
            key.append(entry)
    return tuple(key)


def full_key(key: tuple, shape: tuple[int, ...]) -> tuple:
    """*key* bounds-checked and padded to one normalised entry per dimension."""
    if len(key) > len(shape):
        raise ExpressionError(f"slice has {len(key)} entries for {len(shape)} dimension(s)")
    out = []
    for dim, n in enumerate(shape):
        entry = key[dim] if dim < len(key) else slice(None)
        if isinstance(entry, slice):
            start, stop, step = entry.indices(n)
            # A backwards slice that runs past 0 normalises to stop=-1, which numpy
            # would read as "the last element": None says "through the start"
            out.append(slice(start, None if stop < 0 else stop, step))
        else:
            i = int(entry)
            if not -n <= i < n:
                raise ExpressionError(f"index {i} is out of range for dimension {dim} of length {n}")
            out.append(i % n)
    return tuple(out)


def evaluate_elementwise(
    tree: ast.AST, sources: Mapping[str, ArraySource], result_shape: tuple[int, ...], key: tuple
) -> np.ndarray:
    """Evaluate a reduction-free, subscript-free expression over ``result[key]``."""
    key = full_key(key, result_shape)
    tree, generated = lift_constructors(tree)
    sources = {**sources, **generated}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in sources}
    env = {
        name: sources[name].read(operand_key(key, result_shape, tuple(sources[name].shape))) for name in names
    }
    checked = expr.Checked(
        text="", tree=ast.Expression(body=tree), names=frozenset(names), has_reduction=False
    )
    value = np.asarray(expr.evaluate(checked, env))
    want = np.broadcast_to(np.empty((), bool), result_shape)[key].shape
    return np.broadcast_to(value, want) if value.shape != want else value


def lift_constructors(tree: ast.AST) -> tuple[ast.AST, dict[str, constructors.Generated]]:
    """*tree* with each constructor call replaced by an operand that computes only the part read."""
    generated: dict[str, constructors.Generated] = {}

    class _Lift(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:  # noqa: N802 - ast API
            if isinstance(node.func, ast.Name) and node.func.id in expr.CONSTRUCTORS:
                name = f"_g{len(generated)}"
                generated[name] = constructors.build(node)
                return ast.Name(id=name, ctx=ast.Load())
            return self.generic_visit(node)

    if not any(isinstance(n, ast.Call) and n.func.id in expr.CONSTRUCTORS for n in ast.walk(tree)):
        return tree, generated
    return _Lift().visit(_clone(tree)), generated


# --------------------------------------------------------------------------- extraction


@dataclass
class Extracted:
    """An expression with its reductions and subscripts replaced by virtual operands."""

    tree: ast.AST
    virtual: dict[str, np.ndarray]


def extract(
    tree: ast.AST,
    sources: Mapping[str, ArraySource],
    reduce: Callable[[str, int | None, ast.AST, Mapping[str, ArraySource]], np.ndarray] | None,
    *,
    pull_subscripts: bool = True,
) -> Extracted:
    """Compute reductions and operand subscripts bottom-up; return the elementwise remainder.

    *reduce(name, axis, argument_tree, sources)* computes one reduction over a
    reduction-free argument (this is where fan-out happens).  With
    ``pull_subscripts=False`` subscripts stay in the tree (a coordinator that
    holds only metadata leaves them to the compute side).
    """
    virtual: dict[str, np.ndarray] = {}

    class _Pull(ast.NodeTransformer):
        def visit_Subscript(self, node: ast.Subscript) -> ast.AST:  # noqa: N802 - ast API
            if not pull_subscripts:
                return node
            source = sources[node.value.id]
            key = _literal_key(node.slice)
            try:
                value = source.read(full_key(key, tuple(source.shape)))
            except ExpressionError as exc:
                raise ExpressionError(f"{ast.unparse(node)!r}: {exc}") from None
            return self._virtual(np.asarray(value))

        def visit_Call(self, node: ast.Call) -> ast.AST:  # noqa: N802 - ast API
            node = self.generic_visit(node)
            if node.func.id in expr.WHOLE and pull_subscripts:
                return self._virtual(self._join(node))
            if node.func.id not in expr.REDUCTIONS or reduce is None:
                return node
            merged = {**sources, **{k: InMemory(v) for k, v in virtual.items()}}
            argument = node.args[0]
            arg_shape, _ = infer_tree(argument, merged)
            axis = _norm_axis(_axis(node), len(arg_shape), node.func.id)
            return self._virtual(np.asarray(reduce(node.func.id, axis, argument, merged)))

        def _join(self, node: ast.Call) -> np.ndarray:
            # Each argument whole (reductions and subscripts in it are virtual already)
            merged = {**sources, **{k: InMemory(v) for k, v in virtual.items()}}
            name = node.func.id
            arrays = []
            for element in node.args[0].elts if name in expr.JOINS else node.args:
                shape, dtype = infer_tree(element, merged)
                full = tuple(slice(0, n, 1) for n in shape)
                arrays.append(np.asarray(evaluate_elementwise(element, merged, shape, full)).astype(dtype))
            if name in expr.LINALG:
                infer_tree(node, merged)  # shapes that do not multiply: a 400, not numpy's ValueError
                return np.asarray(expr.LINALG[name](*arrays))
            return np.asarray(expr.JOINS[name](arrays, axis=expr.join_axis(node)))

        def _virtual(self, value: np.ndarray) -> ast.AST:
            name = f"_v{len(virtual)}"
            virtual[name] = value
            return ast.Name(id=name, ctx=ast.Load())

    new = _Pull().visit(_clone(tree))
    return Extracted(ast.fix_missing_locations(new), virtual)


def _clone(tree: ast.AST) -> ast.AST:
    return ast.parse(ast.unparse(tree), mode="eval").body


def evaluate(checked: expr.Checked, sources: Mapping[str, ArraySource], key: tuple, reduce=None):
    """``result[key]`` of a checked, flat expression over *sources*.

    *reduce* computes each reduction (default: :func:`functions.engine.reductions.reduce_locally`).
    """
    if reduce is None:
        from functions.engine.reductions import reduce_locally as reduce  # it imports this module

    shape, dtype = infer(checked, sources)
    extracted = extract(checked.tree.body, sources, reduce)
    merged = {**sources, **{k: InMemory(v) for k, v in extracted.virtual.items()}}
    value = evaluate_elementwise(extracted.tree, merged, shape, key)
    return np.asarray(value).astype(dtype, copy=False)

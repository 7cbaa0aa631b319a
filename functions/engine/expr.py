"""An allow-list expression language: parsed with :mod:`ast`, checked, evaluated with numpy.

User expressions (``filter`` on structured arrays, lazy expressions) are never
given to ``eval``.  They are parsed into Python's AST and every node must be in
the allow-list below; names must be known operands or listed functions.  The
checked tree is then evaluated by walking it with numpy.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from functions.engine import constructors
from functions.engine.errors import ExpressionError

#: Longest expression accepted, characters.
MAX_LENGTH = 4000
#: Most AST nodes in one expression (bounds evaluation work and memory).
MAX_NODES = 400
#: Deepest nesting accepted: Python's own parser recurses and would crash first.
MAX_DEPTH = 40
#: Largest integer literal exponent: ``x ** 10**9`` on integers would hang a worker.
MAX_POWER = 64
#: Largest integer literal magnitude: numpy computes in at most 64 bits, and a bigger
#: literal either overflows (OverflowError) or silently becomes an inexact float.
MAX_INT = 2**63 - 1
#: Largest literal shift: shifting 64-bit integers by more is undefined in C and 0 in numpy.
MAX_SHIFT = 63


_BINOPS: dict[type, Callable] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
    ast.BitAnd: np.bitwise_and,
    ast.BitOr: np.bitwise_or,
    ast.BitXor: np.bitwise_xor,
    ast.LShift: np.left_shift,
    ast.RShift: np.right_shift,
}
_UNARY: dict[type, Callable] = {
    ast.USub: np.negative,
    ast.UAdd: np.positive,
    ast.Invert: np.invert,
    ast.Not: np.logical_not,
}
_COMPARE: dict[type, Callable] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}

#: Elementwise functions by name, with the number of arguments each takes.
ARITY: dict[str, int] = {
    **dict.fromkeys(
        (
            "sin cos tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh "
            "exp expm1 log log10 log1p log2 sqrt abs absolute sign floor ceil trunc "
            "real imag conj isnan isinf isfinite"
        ).split(),
        1,
    ),
    **dict.fromkeys("arctan2 maximum minimum hypot power".split(), 2),
    "where": 3,  # where(cond) alone is numpy's nonzero(), not an elementwise function
}
ELEMENTWISE: dict[str, Callable] = {name: getattr(np, name) for name in ARITY}

#: Reductions by name; they take an optional ``axis`` keyword (int).
REDUCTIONS: dict[str, Callable] = {
    "sum": np.sum,
    "mean": np.mean,
    "min": np.min,
    "max": np.max,
    "prod": np.prod,
    "std": np.std,
    "var": np.var,
    "any": np.any,
    "all": np.all,
}

#: Functions that join whole arrays: ``concat([a, b], axis=0)``, ``stack([a, b], axis=1)``.
JOINS: dict[str, Callable] = {"concat": np.concatenate, "concatenate": np.concatenate, "stack": np.stack}
#: Linear algebra over whole arrays: ``matmul(a, b)`` (numpy's rules: 1-D operands promoted,
#: leading dimensions broadcast).  Like joins it needs its arguments whole, so it is stored
#: computed, as Caterva2 stores it.
LINALG: dict[str, Callable] = {"matmul": np.matmul}
#: Functions whose result needs their arguments whole (never evaluated box by box).
WHOLE = frozenset(JOINS) | frozenset(LINALG)
#: Operand-less constructors (``linspace(0, 1, 100)``): see :mod:`functions.engine.constructors`.
CONSTRUCTORS = constructors.NAMES
#: Most arrays one ``concat``/``stack`` joins.
MAX_JOINED = 64
#: Every function name an expression may call.
FUNCTIONS = frozenset(ELEMENTWISE) | frozenset(REDUCTIONS) | WHOLE | CONSTRUCTORS


@dataclass(frozen=True)
class Checked:
    """A parsed expression that passed the allow-list, with the operand names it uses."""

    text: str
    tree: ast.Expression
    names: frozenset[str]
    has_reduction: bool


def _depth(node: ast.AST, limit: int) -> int:
    stack = [(node, 1)]
    deepest = 0
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(current))
    return deepest


def _token(node: ast.AST, text: str) -> str:
    segment = ast.get_source_segment(text, node)
    return segment if segment else type(node).__name__


def check(text: str, operands: set[str] | frozenset[str], *, allow_reductions: bool = True) -> Checked:
    """Parse *text* and verify every node against the allow-list.

    Parameters
    ----------
    text : str
        The expression.
    operands : set of str
        Names that may appear as operands (dataset aliases or field names).
    allow_reductions : bool
        Whether ``sum(...)`` and friends are accepted.

    Raises
    ------
    ExpressionError
        Naming the offending token.

    """
    tree = _parse(text)
    source = text.strip()
    names: set[str] = set()
    reduction = False
    lists = _argument_lists(tree)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            reduction |= _check_call(node, source, allow_reductions)
        elif isinstance(node, ast.Name):
            _check_name(node, operands, names)
            if node.id not in operands and id(node) not in called:
                raise ExpressionError(f"{node.id!r} is a function: call it, as in {node.id}(...)")
        elif isinstance(node, ast.List) and id(node) in lists:
            continue  # the arrays a join takes, or a constructor's shape: their parts are checked
        else:
            _check_node(node, source, operands)
    return Checked(text=source, tree=tree, names=frozenset(names), has_reduction=reduction)


def _parse(text: str) -> ast.Expression:
    """The expression's tree, refused early when it is empty, too long, too big or too deep."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    # Parentheses nest in the parser before our depth check can see the tree
    if text.count("(") > MAX_NODES or text.count("[") > MAX_NODES:
        raise ExpressionError("the expression nests too deeply")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"the expression does not parse: {exc.__class__.__name__}: {exc}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExpressionError(f"the expression has more than {MAX_NODES} parts")
    if _depth(tree, MAX_DEPTH) > MAX_DEPTH:
        raise ExpressionError(f"the expression nests deeper than {MAX_DEPTH} levels")
    return tree


def _argument_lists(tree: ast.AST) -> set[int]:
    """The list displays an expression may hold: a join's arrays and a constructor's literals."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id in JOINS and node.args and isinstance(node.args[0], ast.List):
            allowed.add(id(node.args[0]))
        elif node.func.id in CONSTRUCTORS:
            parts = [*node.args, *(k.value for k in node.keywords)]
            allowed.update(id(n) for part in parts for n in ast.walk(part) if isinstance(n, ast.List))
    return allowed


def _check_name(node: ast.Name, operands: set[str] | frozenset[str], names: set[str]) -> None:
    if node.id in operands:
        names.add(node.id)
    elif node.id not in FUNCTIONS:  # functions: checked as calls
        raise ExpressionError(f"unknown name {node.id!r}")


def _check_constant(node: ast.Constant, source: str) -> None:
    if isinstance(node.value, int) and not isinstance(node.value, bool) and abs(node.value) > MAX_INT:
        raise ExpressionError(f"integer literal {_token(node, source)[:40]!r} is too large (beyond 64 bits)")
    if isinstance(node.value, bool | int | float | complex) or node.value is None:
        return
    if isinstance(node.value, str | bytes) and len(node.value) <= 256:
        return  # comparisons against string fields; never evaluated as code
    raise ExpressionError(f"literal {_token(node, source)!r} is not allowed")


def _check_binop(node: ast.BinOp, source: str) -> None:
    if type(node.op) not in _BINOPS:
        raise ExpressionError(f"operator in {_token(node, source)!r} is not allowed")
    right = _literal_number(node.right)
    if right is None:
        return
    if isinstance(node.op, ast.Pow) and not abs(right) <= MAX_POWER:
        raise ExpressionError(f"exponent in {_token(node, source)!r} is too large")
    if isinstance(node.op, ast.LShift | ast.RShift) and not 0 <= right <= MAX_SHIFT:
        raise ExpressionError(f"shift in {_token(node, source)!r} must be by 0 to {MAX_SHIFT} bits")


def _literal_number(node: ast.AST) -> int | float | None:
    """The value of a real number literal, signed (``3``, ``-2.5``), else None."""
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    value = node.value if isinstance(node, ast.Constant) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return sign * value
    return None


#: Nodes that are allowed as they stand: their parts are checked on their own
_STRUCTURAL = (ast.Expression, ast.Load, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.And, ast.Or)
#: ``keyword`` is checked in :func:`_check_call`; slices and tuples only hold checked parts
_PARTS = (ast.keyword, ast.Slice, ast.Tuple)


def _check_node(node: ast.AST, source: str, operands: set[str] | frozenset[str]) -> None:
    if isinstance(node, ast.Slice):
        return _check_slice(node, source)
    if isinstance(node, _STRUCTURAL + _PARTS):
        return
    if type(node) in _BINOPS or type(node) in _UNARY or type(node) in _COMPARE:
        return
    if isinstance(node, ast.Constant):
        return _check_constant(node, source)
    if isinstance(node, ast.BinOp):
        return _check_binop(node, source)
    if isinstance(node, ast.Subscript):
        if not (isinstance(node.value, ast.Name) and node.value.id in operands):
            raise ExpressionError(f"only operands can be sliced: {_token(node, source)!r}")
        return None
    raise ExpressionError(f"{_token(node, source)!r} is not allowed ({type(node).__name__})")


def _check_slice(node: ast.Slice, source: str) -> None:
    step = node.step
    if isinstance(step, ast.Constant) and isinstance(step.value, int | float) and step.value == 0:
        raise ExpressionError(f"slice step cannot be zero in {_token(node, source)!r}")


def _check_call(node: ast.Call, source: str, allow_reductions: bool) -> bool:
    if not isinstance(node.func, ast.Name):
        raise ExpressionError(f"call of {_token(node.func, source)!r} is not allowed")
    name = node.func.id
    if name in REDUCTIONS:
        if not allow_reductions:
            raise ExpressionError(f"reduction {name!r} is not allowed here")
        if len(node.args) != 1:
            raise ExpressionError(f"{name}() takes one argument")
        for kw in node.keywords:
            if kw.arg != "axis" or not _is_int_literal(kw.value):
                raise ExpressionError(f"{name}() only takes an integer axis=, not {_token(kw, source)!r}")
        return True
    if name in ELEMENTWISE:
        _check_elementwise(node, name)
        return False
    if name in WHOLE or name in CONSTRUCTORS:
        if not allow_reductions:
            raise ExpressionError(f"{name}() is not allowed here")
        _check_whole(node, name)
        return False
    raise ExpressionError(f"function {name!r} is not allowed")


def _check_whole(node: ast.Call, name: str) -> None:
    """A constructor, a join or ``matmul``: calls over whole arrays (or none)."""
    if name in CONSTRUCTORS:
        constructors.build(node)  # every argument a literal, and an array they can make
    elif name in LINALG:
        if node.keywords or len(node.args) != 2:
            raise ExpressionError(f"{name}() takes two arrays and no keywords: {name}(a, b)")
    else:
        _check_join(node, name)


def _check_elementwise(node: ast.Call, name: str) -> None:
    if node.keywords:
        raise ExpressionError(f"{name}() takes no keywords")
    want = ARITY[name]
    if len(node.args) != want:
        plural = "argument" if want == 1 else "arguments"
        raise ExpressionError(f"{name}() takes {want} {plural}, not {len(node.args)}")


def _check_join(node: ast.Call, name: str) -> None:
    """``concat([a, b, ...], axis=0)``: a list of arrays, then an optional integer axis."""
    arrays = node.args[0] if node.args else None
    if not isinstance(arrays, ast.List | ast.Tuple) or not arrays.elts:
        raise ExpressionError(f"{name}() takes a list of arrays first: {name}([a, b], axis=0)")
    if len(arrays.elts) > MAX_JOINED:
        raise ExpressionError(f"{name}() joins at most {MAX_JOINED} arrays")
    axes = node.args[1:] + [k.value for k in node.keywords]
    if len(axes) > 1 or any(k.arg != "axis" for k in node.keywords):
        raise ExpressionError(f"{name}() takes the arrays and an axis only")
    if axes and not _is_int_literal(axes[0]):
        raise ExpressionError(f"{name}() takes an integer literal axis")


def join_axis(node: ast.Call) -> int:
    """The axis of a checked ``concat``/``stack`` call (0 when not given)."""
    axes = node.args[1:] + [k.value for k in node.keywords]
    return literal_int(axes[0]) if axes else 0


def _is_int_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool)


def literal_int(node: ast.AST) -> int:
    """The value of an integer literal (``3``, ``-3``, ``+3``); :class:`ExpressionError` otherwise."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = literal_int(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return int(node.value)
    raise ExpressionError(f"expected an integer literal, not {ast.unparse(node)!r}")


def evaluate(checked: Checked, env: Mapping[str, object]):
    """Evaluate a checked expression with numpy over the arrays in *env*.

    Raises
    ------
    ExpressionError
        When numpy refuses the operands (types that do not combine, shapes
        that do not broadcast, indices out of range or not integers): the
        message says what numpy said.

    """
    try:
        with np.errstate(all="ignore"):
            return _eval(checked.tree.body, env)
    except ExpressionError:
        raise
    # numpy's refusals: UFuncTypeError is a TypeError; IndexError for bad subscripts
    except (TypeError, ValueError, OverflowError, IndexError, ZeroDivisionError) as exc:
        raise ExpressionError(
            f"the expression cannot be evaluated: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None


def _eval(node: ast.AST, env: Mapping[str, object]):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, env))
    if isinstance(node, ast.BoolOp):
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        values = [_eval(v, env) for v in node.values]
        result = values[0]
        for value in values[1:]:
            result = fn(result, value)
        return result
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        result = None
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, env)
            part = _COMPARE[type(op)](left, right)
            result = part if result is None else np.logical_and(result, part)
            left = right
        return result
    if isinstance(node, ast.Call):
        return _eval_call(node, env)
    if isinstance(node, ast.Subscript):
        return np.asarray(env[node.value.id])[_eval_index(node.slice, env)]
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")  # unreachable after check()


def _eval_call(node: ast.Call, env: Mapping[str, object]):
    name = node.func.id
    if name in CONSTRUCTORS:
        # Lazy evaluation lifts constructors into sliced operands first (lazy.py); whole
        # here, as an expression over whole arrays means it
        generated = constructors.build(node)
        return generated.read(tuple(slice(0, n, 1) for n in generated.shape))
    if name in JOINS:
        arrays = [_eval(e, env) for e in node.args[0].elts]
        return JOINS[name](arrays, axis=join_axis(node))
    args = [_eval(a, env) for a in node.args]
    if name in LINALG:
        return LINALG[name](*args)
    if name in REDUCTIONS:
        axis = next((literal_int(k.value) for k in node.keywords), None)
        return REDUCTIONS[name](args[0], axis=axis)
    return ELEMENTWISE[name](*args)


def _eval_index(node: ast.AST, env):
    if isinstance(node, ast.Tuple):
        return tuple(_eval_index(e, env) for e in node.elts)
    if isinstance(node, ast.Slice):
        parts = [None if p is None else _index(p, env) for p in (node.lower, node.upper, node.step)]
        if parts[2] == 0:
            raise ExpressionError("slice step cannot be zero")
        return slice(*parts)
    return _index(node, env)


def _index(node: ast.AST, env) -> int:
    """An index or slice bound: an integer within 64 bits (``a[1e309]`` is refused, not an overflow)."""
    value = _eval(node, env)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ExpressionError(f"index {ast.unparse(node)[:40]!r} is not an integer")
    if abs(int(value)) > MAX_INT:
        raise ExpressionError(f"index {ast.unparse(node)[:40]!r} is too large (beyond 64 bits)")
    return int(value)

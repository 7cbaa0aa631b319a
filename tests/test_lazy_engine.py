"""The lazy-expression engine against numpy: shapes, dtypes, slices, reductions, inlining."""

from __future__ import annotations

import numpy as np
import pytest

from functions.engine import expr, lazy, reductions

RNG = np.random.default_rng(0)
X = RNG.random((40, 30))
Y = RNG.integers(-5, 5, (40, 30)).astype(np.int16)
Z = RNG.random(30).astype(np.float32)
B = RNG.random((40, 1)) > 0.5


class Chunked(lazy.InMemory):
    chunks = (7, 11)  # reductions follow these boxes, as they follow stored chunks


SOURCES = {"x": Chunked(X), "y": Chunked(Y), "z": lazy.InMemory(Z), "b": lazy.InMemory(B)}
NUMPY = {"x": X, "y": Y, "z": Z, "b": B}

# (expression, the same in numpy)
TABLE = [
    ("x + 1", lambda e: e["x"] + 1),
    ("x * y - z", lambda e: e["x"] * e["y"] - e["z"]),
    ("y // 2 + y % 3", lambda e: e["y"] // 2 + e["y"] % 3),
    ("where(x > 0.5, x, -x)", lambda e: np.where(e["x"] > 0.5, e["x"], -e["x"])),
    ("sin(x) ** 2 + cos(x) ** 2", lambda e: np.sin(e["x"]) ** 2 + np.cos(e["x"]) ** 2),
    ("sum(x)", lambda e: np.sum(e["x"])),
    ("sum(x, axis=0)", lambda e: np.sum(e["x"], axis=0)),
    ("mean(x, axis=1)", lambda e: np.mean(e["x"], axis=1)),
    ("std(x)", lambda e: np.std(e["x"])),
    ("var(y, axis=0)", lambda e: np.var(e["y"], axis=0)),
    ("min(y, axis=1) + max(z)", lambda e: np.min(e["y"], axis=1) + np.max(e["z"])),
    ("x - mean(x)", lambda e: e["x"] - np.mean(e["x"])),
    ("sum(x - mean(x, axis=0), axis=0)", lambda e: np.sum(e["x"] - np.mean(e["x"], axis=0), axis=0)),
    ("any(b)", lambda e: np.any(e["b"])),
    ("all(x > 0)", lambda e: np.all(e["x"] > 0)),
    ("prod(y[0:3, 0:2] + 6)", lambda e: np.prod(e["y"][0:3, 0:2] + 6)),
    ("x[2:10] * 2", lambda e: e["x"][2:10] * 2),
    ("(x > 0.3) & b", lambda e: (e["x"] > 0.3) & e["b"]),
    ("~(y > 0)", lambda e: ~(e["y"] > 0)),
    ("y << 2", lambda e: e["y"] << 2),
    ("abs(y) + sqrt(x)", lambda e: np.abs(e["y"]) + np.sqrt(e["x"])),
    ("where(b, y, 0) + z", lambda e: np.where(e["b"], e["y"], 0) + e["z"]),
    ("std(x, axis=-1)", lambda e: np.std(e["x"], axis=-1)),
    ("x[5, 3] + 1", lambda e: e["x"][5, 3] + 1),
    ("mean(y)", lambda e: np.mean(e["y"])),
    ("x ** 2 + y ** 3", lambda e: e["x"] ** 2 + e["y"] ** 3),
    ("-x + +y", lambda e: -e["x"] + +e["y"]),
    ("(x < 0.5) | (y == 3)", lambda e: (e["x"] < 0.5) | (e["y"] == 3)),
    ("arctan2(x, z)", lambda e: np.arctan2(e["x"], e["z"])),
    ("sum(sum(x, axis=0))", lambda e: np.sum(np.sum(e["x"], axis=0))),
    ("x[::3, ::-2] + 0", lambda e: e["x"][::3, ::-2] + 0),
    ("y * 2.5", lambda e: e["y"] * 2.5),
    ("y + 1", lambda e: e["y"] + 1),  # stays int16 (Python literals are weak, NEP 50)
]


@pytest.mark.parametrize(("text", "reference"), TABLE, ids=[t for t, _ in TABLE])
def test_expression_matches_numpy(text, reference):
    checked = expr.check(text, set(SOURCES))
    want = np.asarray(reference(NUMPY))
    shape, dtype = lazy.infer(checked, SOURCES)
    assert shape == want.shape and dtype == want.dtype
    key = () if not shape else tuple(slice(1, max(2, n - 3)) for n in shape)
    got = lazy.evaluate(checked, SOURCES, key)
    assert got.shape == want[key].shape
    assert np.allclose(got, want[key], equal_nan=True)


def test_shape_mismatch_is_an_expression_error():
    bad = {"x": lazy.InMemory(np.zeros((3, 4))), "y": lazy.InMemory(np.zeros(5))}
    with pytest.raises(expr.ExpressionError, match="do not broadcast"):
        lazy.infer(expr.check("x + y", set(bad)), bad)
    with pytest.raises(expr.ExpressionError, match="out of range"):
        lazy.infer(expr.check("sum(x, axis=2)", set(bad)), bad)


def test_reduction_partials_combine_exactly_in_any_grouping():
    values = RNG.random((50, 20))
    for name in ["sum", "mean", "std", "var", "min", "max", "prod", "any", "all"]:
        for axis in (None, 0, 1):
            box_list = reductions.boxes(values.shape, (7, 6))
            parts = [(b, reductions.partial_reduce(name, axis, values[b])) for b in box_list]
            got = reductions.place(name, axis, values.shape, list(reversed(parts)))
            want = getattr(np, name)(values, axis=axis)
            assert np.allclose(got, want), (name, axis)


def test_inline_expressions_over_expressions_and_cycles():
    defs = {
        "@p/a.b2nd": lazy.Definition("x + 1", {"x": "ex/x"}),
        "@p/b.b2nd": lazy.Definition("a * a + y", {"a": "@p/a.b2nd", "y": "ex/x"}),
        "@p/c1": lazy.Definition("c2 + 1", {"c2": "@p/c2"}),
        "@p/c2": lazy.Definition("c1 + 1", {"c1": "@p/c1"}),
    }
    text, operands = lazy.inline(defs["@p/b.b2nd"], defs.get, path="@p/b.b2nd")
    assert operands == {"o0": "ex/x"}
    assert text == "(o0 + 1) * (o0 + 1) + o0"
    with pytest.raises(expr.ExpressionError, match="cycle: @p/c1 -> @p/c2 -> @p/c1"):
        lazy.inline(defs["@p/c1"], defs.get, path="@p/c1")
    self_ref = {"@p/s": lazy.Definition("s + 1", {"s": "@p/s"})}
    with pytest.raises(expr.ExpressionError, match="cycle"):
        lazy.inline(self_ref["@p/s"], self_ref.get, path="@p/s")

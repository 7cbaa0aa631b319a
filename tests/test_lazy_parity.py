"""Lazy-expression parity with Caterva2 over real HTTP: constructors, joins, geometry, budgets.

Expressions go through the allow-list (never LazyUDF); results are compared with what
blosc2 and numpy compute locally, exactly.
"""

from __future__ import annotations

import re
import time

import blosc2
import caterva2 as cat2
import httpx
import numpy as np
import pytest

from functions.engine.content import load_object

A = np.arange(1000, dtype=np.int32)  # 1-d in (100,) chunks, as Caterva2's ds-1d.b2nd
M = np.arange(60, dtype=np.float32).reshape(6, 10)
LAYOUT = {"a": (A, (100,), (10,)), "m": (M, (4, 5), (2, 5)), "t": (np.ascontiguousarray(M.T), (5, 4), (5, 2))}


@pytest.fixture(scope="module")
def env(stack):
    publisher = stack.regions[0].services.publisher
    for name, (values, chunks, blocks) in LAYOUT.items():
        publisher.publish(
            "lp", f"{name}.b2nd", load_object(blosc2.asarray(values, chunks=chunks, blocks=blocks))
        )
    user, password = stack.resources["demo_user"], stack.resources["demo_password"]
    cat = cat2.Client(stack.api_url, (user, password))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(cat.get_list("lp")) < len(LAYOUT):
        time.sleep(0.05)
    return {"url": stack.api_url, "cat": cat, "cookie": cat.cookie}


def _upload(env, path, expression, operands=None, compute=False) -> httpx.Response:
    body = {"expression": expression, "operands": operands or {}, "compute": compute}
    return httpx.post(
        f"{env['url']}/api/upload_lazyarr/{path}", json=body, headers={"Cookie": env["cookie"]}, timeout=60
    )


# (name, expression as blosc2 sends it, the same computed locally by blosc2)
CONSTRUCTED = [
    ("linspace", "(linspace(0, 10, num=50))", lambda: blosc2.linspace(0, 10, num=50)[:]),
    (
        "linspace_open",
        "linspace(-3.5, 2, 7, endpoint=False)",
        lambda: blosc2.linspace(-3.5, 2, 7, endpoint=False)[:],
    ),
    ("linspace_2d", "linspace(0, 1, 60, shape=(6, 10))", lambda: blosc2.linspace(0, 1, 60, shape=(6, 10))[:]),
    (
        "linspace_f4",
        "linspace(0, 10, 60, dtype='float32')",
        lambda: blosc2.linspace(0, 10, 60, dtype="float32")[:],
    ),
    ("arange", "arange(2, 20, 3)", lambda: blosc2.arange(2, 20, 3)[:]),
    ("arange_float", "arange(0.5, 10.2, 0.3)", lambda: blosc2.arange(0.5, 10.2, 0.3)[:]),
    ("arange_down", "arange(10, 0, -1)", lambda: blosc2.arange(10, 0, -1)[:]),
    ("zeros", "zeros((3, 4), dtype='int32') + 1", lambda: blosc2.zeros((3, 4), dtype="int32")[:] + 1),
    ("ones", "ones(5)", lambda: blosc2.ones(5)[:]),
    ("full", "full((3, 4), 7)", lambda: blosc2.full((3, 4), 7)[:]),
    ("eye", "eye(4, k=1)", lambda: blosc2.eye(4, k=1)[:]),
    ("mixed", "arange(10) + linspace(0, 1, 10)", lambda: blosc2.arange(10)[:] + blosc2.linspace(0, 1, 10)[:]),
    ("reduced", "sum(linspace(0, 1, 100))", lambda: np.sum(blosc2.linspace(0, 1, 100)[:])),
]


@pytest.mark.parametrize(("name", "expression", "local"), CONSTRUCTED, ids=[c[0] for c in CONSTRUCTED])
def test_operand_less_constructors_equal_blosc2s(env, name, expression, local):
    r = _upload(env, f"@personal/c-{name}.b2nd", expression)
    assert r.status_code == 200, r.text
    want = np.asarray(local())
    info = env["cat"].get_info(r.json())
    assert (tuple(info["shape"]), info["dtype"]) == (want.shape, str(want.dtype))
    got = env["cat"].fetch(r.json())
    assert got.dtype == want.dtype and np.array_equal(got, want)
    if want.ndim:  # a slice is computed for itself, not cut from the whole
        part = tuple(slice(1, min(4, n)) for n in want.shape)
        assert np.array_equal(env["cat"].get(r.json())[part], want[part])


def test_a_blosc2_expression_mixing_an_operand_and_a_constructor(env):
    # test_api.py::test_lazyexpr's streamlined API: the operand plus a linspace over its length
    a = env["cat"].get("lp/a.b2nd")
    expression = a + 0
    expression += 2 * blosc2.lazyexpr(f"linspace(0, 1, {a.shape[0]})")
    ds = env["cat"].upload(expression, "@personal/mixed.b2nd")
    assert np.array_equal(ds[:], A + 2 * blosc2.linspace(0, 1, 1000)[:])
    assert env["cat"].get_info(ds)["chunks"] == [100]  # the operand's layout


def test_compute_true_stores_a_constructor_computed(env):
    cat = env["cat"]
    ds = cat.upload(blosc2.lazyexpr("linspace(0, 10, num=50)"), "@personal/forced.b2nd", compute=True)
    assert "expression" not in ds.meta
    assert np.array_equal(ds[:], blosc2.linspace(0, 10, num=50)[:])


def test_concat_and_stack_are_stored_computed(env):
    cat = env["cat"]
    r = _upload(env, "@personal/joined.b2nd", "concat([x, x * 2, x], axis=0)", {"x": "lp/a.b2nd"})
    assert r.status_code == 200, r.text
    info = cat.get_info(r.json())
    assert "expression" not in info and info["shape"] == [3000]
    assert np.array_equal(cat.fetch(r.json()), np.concatenate([A, A * 2, A]))
    r = _upload(
        env, "@personal/stacked.b2nd", "stack([p, q, p], axis=1)", {"p": "lp/m.b2nd", "q": "lp/m.b2nd"}
    )
    assert r.status_code == 200, r.text
    assert "expression" not in cat.get_info(r.json())
    assert np.array_equal(cat.fetch(r.json()), np.stack([M, M, M], axis=1))
    # Through caterva2.Client, as test_api.py::test_stack sends it
    m = cat.get("lp/m.b2nd")
    ds = cat.upload(blosc2.lazyexpr("stack([p, p], axis=0)", operands={"p": m}), "@personal/stack2.b2nd")
    assert ds.shape == (2, 6, 10) and np.array_equal(ds[:], np.stack([M, M]))


def test_matmul_is_stored_computed_and_equals_numpys(env):
    cat = env["cat"]
    cases = [
        ("matmul(m, t)", {"m": "lp/m.b2nd", "t": "lp/t.b2nd"}, M @ M.T),
        ("matmul(m, x[0:10]) + 1", {"m": "lp/m.b2nd", "x": "lp/a.b2nd"}, M @ A[:10] + 1),
        ("sum(matmul(t, m), axis=0)", {"m": "lp/m.b2nd", "t": "lp/t.b2nd"}, np.sum(M.T @ M, axis=0)),
    ]
    for n, (expression, operands, local) in enumerate(cases):
        r = _upload(env, f"@personal/mm{n}.b2nd", expression, operands)
        assert r.status_code == 200, r.text
        info = cat.get_info(r.json())
        assert "expression" not in info and info["shape"] == list(local.shape), expression
        np.testing.assert_allclose(cat.fetch(r.json()), local, rtol=1e-6)
    # Through caterva2.Client, as test_hdf5_proxy.py::test_expression sends it
    m, t = cat.get("lp/m.b2nd"), cat.get("lp/t.b2nd")
    ds = cat.upload(blosc2.lazyexpr("matmul(a, b)", operands={"a": m, "b": t}), "@personal/mm.b2nd")
    assert "expression" not in cat.get_info(ds) and np.allclose(ds[()], M @ M.T)


def test_matmul_refusals_say_why(env):
    for expression, fragment in [
        ("matmul(m, m)", "10 columns against 6 rows"),
        ("matmul(m)", "two arrays"),
        ("matmul(m, t, axes=1)", "no keywords"),
        ("matmul(2, m)", "one dimension or more"),
    ]:
        named = {"m": "lp/m.b2nd", "t": "lp/t.b2nd"}
        operands = {k: v for k, v in named.items() if re.search(rf"\b{k}\b", expression)}
        r = _upload(env, "@personal/mm-refused.b2nd", expression, operands)
        assert r.status_code == 400, (expression, r.text)
        assert fragment in r.json()["detail"], (expression, r.text)
    # A product over the work budget is refused before anything is read or multiplied
    r = _upload(env, "@personal/mm-big.b2nd", "matmul(zeros((20000, 20000)), zeros((20000, 20000)))")
    assert r.status_code == 413, r.text
    assert "ask for" in r.json()["detail"]


def test_a_chunk_of_a_lazy_array_fits_a_buffer_sized_from_its_operand(env):
    # blosc2.decompress2 into a buffer of the operand's chunk: a bigger chunk would overrun it
    r = _upload(env, "@personal/like-a.b2nd", "x + 0", {"x": "lp/a.b2nd"})
    assert r.status_code == 200, r.text
    op, lx = env["cat"].get_info("lp/a.b2nd"), env["cat"].get_info(r.json())
    assert (lx["chunks"], lx["blocks"]) == (op["chunks"], op["blocks"]) == ([100], [10])
    for nchunk in (0, 9):
        chunk = env["cat"].get_chunk(r.json(), nchunk)
        assert blosc2.get_cbuffer_sizes(chunk)[0] == 100 * A.itemsize == op["schunk"]["chunksize"]
        out = np.empty(100, dtype=A.dtype)
        blosc2.decompress2(chunk, out)
        assert np.array_equal(out, A[nchunk * 100 : (nchunk + 1) * 100])
    # 2-d with an edge chunk, and an operand-less one (its own layout, as info says)
    r = _upload(env, "@personal/like-m.b2nd", "p * 2", {"p": "lp/m.b2nd"})
    chunk = env["cat"].get_chunk(r.json(), 3)  # row 1, column 1 of a (2, 2) grid: padded
    out = np.empty((4, 5), dtype=M.dtype)
    blosc2.decompress2(chunk, out)
    assert np.array_equal(out[:2], M[4:6, 5:10] * 2)
    r = _upload(env, "@personal/lin-chunks.b2nd", "linspace(0, 1, 1000)")
    info = env["cat"].get_info(r.json())
    chunk = env["cat"].get_chunk(r.json(), 0)
    out = np.empty(info["chunks"], dtype=np.float64)
    blosc2.decompress2(chunk, out)
    n = min(info["chunks"][0], 1000)
    assert np.array_equal(out[:n], blosc2.linspace(0, 1, 1000)[:n])


def test_constructors_are_bounded_by_the_work_budget(env):
    # Described, not allocated: storing it is cheap, computing it is refused
    r = _upload(env, "@personal/huge.b2nd", "zeros(1000000000000)")
    assert r.status_code == 200, r.text
    assert env["cat"].get_info(r.json())["shape"] == [10**12]
    got = httpx.get(f"{env['url']}/api/fetch/{r.json()}", headers={"Cookie": env["cookie"]})
    assert got.status_code == 413, got.text
    small = httpx.get(
        f"{env['url']}/api/fetch/{r.json()}", params={"slice_": "5:10"}, headers={"Cookie": env["cookie"]}
    )
    assert small.status_code == 200 and np.array_equal(
        blosc2.ndarray_from_cframe(small.content)[:], np.zeros(5)
    )
    assert _upload(env, "@personal/huge2.b2nd", "zeros(1000000000000)", compute=True).status_code == 413
    assert _upload(env, "@personal/huge3.b2nd", "zeros(10**12)").status_code == 400  # literals only


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("linspace(x, 1, 10)", "literal arguments"),
        ("zeros(3, dtype='object')", "not a boolean or numeric"),
        ("zeros((3, -1))", "non-negative"),
        ("linspace(0, 1)", "num or shape"),
        ("arange(0, 1, 0)", "step cannot be zero"),
        ("zeros(3, foo=1)", "no parameter"),
        ("concat(x)", "list of arrays"),
        ("concat([x, m])", "number of dimensions"),
        ("concat([m, m[0:2, 0:3]], axis=0)", "differ outside axis"),
        ("stack([x], axis=3)", "out of range"),
        ("x + sin", "is a function"),
        ("[x, x]", "not allowed"),
        ("zeros(2**70)", "literal arguments"),
        ("zeros(100000000000000000000)", "more than"),
    ],
)
def test_constructor_and_join_refusals_say_why(env, expression, fragment):
    named = set(re.findall(r"\b[xm]\b", expression))
    operands = {k: v for k, v in {"x": "lp/a.b2nd", "m": "lp/m.b2nd"}.items() if k in named}
    r = _upload(env, "@personal/refused.b2nd", expression, operands)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["detail"]

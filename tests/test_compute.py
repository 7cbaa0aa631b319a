"""The compute coordinator over stored datasets: invocations, fan-out, results cached by version."""

from __future__ import annotations

import blosc2
import numpy as np
import pytest

from functions.adapters.inprocess import LocalInvoker
from functions.adapters.memory import MemoryStore
from functions.engine import compute
from functions.engine.content import load_object
from functions.engine.publish import Publisher
from functions.engine.region import Region
from tests.test_lazy_engine import NUMPY, TABLE


@pytest.fixture
def setup():
    origin, cache = MemoryStore("origin"), MemoryStore("cache")
    publisher = Publisher(origin)
    for name, values in NUMPY.items():
        chunks = tuple(max(1, s // 3) for s in values.shape)
        publisher.publish("t", f"{name}.b2nd", load_object(blosc2.asarray(values, chunks=chunks)))
    region = Region(origin, cache)
    invoker = LocalInvoker(lambda event: compute.handle(region, event))
    coordinator = compute.Coordinator(region, invoker, fanout=4)
    operands = {n: region.head("t", f"{n}.b2nd").manifest for n in NUMPY}
    return publisher, region, invoker, coordinator, operands


@pytest.mark.parametrize(("text", "reference"), TABLE, ids=[t for t, _ in TABLE])
def test_coordinated_evaluation_matches_numpy_and_is_cached(setup, text, reference):
    _, _, invoker, coordinator, operands = setup
    want = np.asarray(reference(NUMPY))
    key = () if not want.shape else tuple(slice(1, max(2, n - 3)) for n in want.shape)
    got = coordinator.evaluate(text, operands, key)
    assert got.shape == want[key].shape and got.dtype == want.dtype
    assert np.allclose(got, want[key])
    before = invoker.invocations
    assert np.allclose(coordinator.evaluate(text, operands, key), got)
    assert invoker.invocations == before  # served from the cache bucket


def test_reduction_fans_out_over_groups_of_chunks(setup):
    _, _, invoker, coordinator, operands = setup
    before = invoker.invocations
    total = coordinator.evaluate("sum(x)", operands, ())
    assert np.isclose(total, NUMPY["x"].sum())
    # x is (40, 30) in (13, 10) chunks: 12 boxes in 4 groups, plus the final slice
    assert invoker.invocations - before == 5


def test_republished_operand_can_never_be_served_stale(setup):
    publisher, region, _, coordinator, operands = setup
    first = coordinator.evaluate("x + 1", operands, ())
    publisher.publish("t", "x.b2nd", load_object(blosc2.asarray(NUMPY["x"] * 10, chunks=(13, 10))))
    head, _ = publisher.read_head("t", "x.b2nd")
    assert head.version == 2
    fresh = {**operands, "x": head.manifest}
    assert np.allclose(coordinator.evaluate("x + 1", fresh, ()), NUMPY["x"] * 10 + 1)
    assert np.allclose(first, NUMPY["x"] + 1)


def test_compute_errors_are_answers_not_crashes(setup):
    _, region, _, _, operands = setup
    assert compute.handle(region, {"op": "nope", "expression": "x", "operands": operands})["status"] == 400
    assert (
        compute.handle(region, {"op": "slice", "expression": "x.real", "operands": operands})["status"] == 400
    )
    assert (
        compute.handle(region, {"op": "slice", "expression": "x", "operands": {"x": "m/missing.json"}})[
            "status"
        ]
        == 404
    )
    assert (
        compute.handle(region, {"op": "slice", "expression": "x", "operands": operands, "key": ["a"]})[
            "status"
        ]
        == 400
    )

"""Fanned-out reductions over sliced operands: each invocation reads only its share of the slice."""

from __future__ import annotations

import ast

import blosc2
import numpy as np
import pytest

from functions.adapters.inprocess import LocalInvoker
from functions.adapters.memory import MemoryStore
from functions.engine import compute, lazy, sliced
from functions.engine.content import load_object
from functions.engine.publish import Publisher
from functions.engine.region import Region

X = np.arange(120 * 50, dtype="f8").reshape(120, 50)

KEYS = [
    (slice(10, 100), slice(None)),
    (slice(None, None, -1), slice(3, 40, 3)),
    (5, slice(2, 9)),
    (slice(100, 10, -7), 4),
]


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_a_view_reads_what_the_subscript_then_the_box_select(key):
    view = sliced.Sliced(lazy.InMemory(X), lazy.full_key(key, X.shape))
    want = X[key]
    assert view.shape == want.shape
    boxes = [(), tuple(slice(0, max(1, n // 2)) for n in want.shape), tuple(slice(None, None, -2) for _ in want.shape)]
    for box in boxes:
        box = box[: len(want.shape)]
        np.testing.assert_array_equal(view.read(lazy.full_key(box, want.shape)), want[box])


def test_as_views_replaces_subscripts_without_reading():
    class Unread(lazy.InMemory):
        def read(self, key):
            raise AssertionError("read")

    tree, views = sliced.as_views(ast.parse("x[0:60] * 2 + x[60:120]", mode="eval").body, {"x": Unread(X)})
    assert ast.unparse(tree) == "_s0 * 2 + _s1" and set(views) == {"_s0", "_s1"}
    assert views["_s0"].chunks is None  # InMemory has no chunks


class CountingRegion(Region):
    """A region that counts the chunks each read asks for."""

    asked: list[int]

    def chunks(self, manifest, indices, stats, *, keep=True):
        indices = list(indices)
        self.asked.extend(indices)
        return super().chunks(manifest, indices, stats, keep=keep)


def test_each_partials_invocation_reads_only_its_share_of_the_slice():
    origin = MemoryStore("origin")
    Publisher(origin).publish("t", "x.b2nd", load_object(blosc2.asarray(X, chunks=(10, 50))))
    region = CountingRegion(origin, MemoryStore("cache"))
    region.asked = []
    invoker = LocalInvoker(lambda event: compute.handle(region, event))
    coordinator = compute.Coordinator(region, invoker, fanout=4)
    operands = {"x": region.head("t", "x.b2nd").manifest}
    total = coordinator.evaluate("sum(x[0:80])", operands, ())
    assert np.isclose(total, X[:80].sum())
    # 8 chunks under the slice, each read once over the 4 invocations (not 4 x 8)
    assert sorted(region.asked) == list(range(8))
    region.asked.clear()
    # not chunk-aligned: boxes straddle chunks, still about one read of each
    assert np.isclose(coordinator.evaluate("mean(x[5:95, 3:40])", operands, ()), X[5:95, 3:40].mean())
    assert len(region.asked) <= 2 * 10 and set(region.asked) == set(range(10))


def test_partials_are_cached_by_operand_version():
    origin, cache = MemoryStore("origin"), MemoryStore("cache")
    publisher = Publisher(origin)
    publisher.publish("t", "x.b2nd", load_object(blosc2.asarray(X, chunks=(10, 50))))
    region = Region(origin, cache)
    invoker = LocalInvoker(lambda event: compute.handle(region, event))
    coordinator = compute.Coordinator(region, invoker, fanout=4)
    operands = {"x": region.head("t", "x.b2nd").manifest}
    assert np.isclose(coordinator.evaluate("sum(x[0:80]) + 1", operands, ()), X[:80].sum() + 1)
    before = invoker.invocations
    # another expression over the same reduction: its partials come from the cache bucket
    assert np.isclose(coordinator.evaluate("sum(x[0:80]) * 2", operands, ()), X[:80].sum() * 2)
    assert invoker.invocations == before + 1  # the final slice only
    publisher.publish("t", "x.b2nd", load_object(blosc2.asarray(X + 1, chunks=(10, 50))))
    fresh = {"x": publisher.read_head("t", "x.b2nd")[0].manifest}
    assert np.isclose(coordinator.evaluate("sum(x[0:80]) * 2", fresh, ()), (X[:80] + 1).sum() * 2)
    assert invoker.invocations > before + 2  # a new version: computed again


def test_a_slice_of_an_elementwise_expression_is_evaluated_box_by_box(monkeypatch):
    from catclient import wire
    from functions.engine import expr

    class Recording(lazy.InMemory):
        sizes: list

        def read(self, key):
            value = super().read(key)
            self.sizes.append(value.size)
            return value

    x = Recording(X)
    x.sizes = []
    monkeypatch.setattr(sliced, "RESULT_BOX_ELEMENTS", 500)
    checked = expr.check("x[10:110] * 2 + 1", {"x"})
    out = sliced.evaluate_chunkwise(checked, {"x": x}, (slice(5, 95), slice(1, 45)), wire.transport_cparams)
    np.testing.assert_array_equal(out[()], (X[10:110] * 2 + 1)[5:95, 1:45])
    # 90 x 44 selected, read at most 500 elements (11 rows of 44) at a time, each element once
    assert max(x.sizes) <= 500 and sum(x.sizes) == 90 * 44


@pytest.mark.parametrize("blocks", [(5, 50), (5, 10)], ids=["rows-blocks", "tiled-blocks"])
def test_boxes_of_an_elementwise_slice_follow_the_operands_chunks(monkeypatch, blocks):
    origin = MemoryStore("origin")
    stored = blosc2.asarray(X, chunks=(10, 50), blocks=blocks)
    Publisher(origin).publish("t", "x.b2nd", load_object(stored))
    region = CountingRegion(origin, None)
    region.asked = []
    coordinator = compute.Coordinator(region, LocalInvoker(lambda event: compute.handle(region, event)))
    operands = {"x": region.head("t", "x.b2nd").manifest}
    # 25 rows of 50 per box, cut to 20: two whole chunks, so no chunk is read for two boxes
    monkeypatch.setattr(sliced, "RESULT_BOX_ELEMENTS", 25 * 50)
    np.testing.assert_array_equal(coordinator.evaluate("x * 2 + 1", operands, ()), X * 2 + 1)
    assert sorted(region.asked) == list(range(12))
    region.asked.clear()
    # a slice starting inside a chunk keeps the plain boxes (and the right answer)
    want = (X * 2 + 1)[15:117, 3:47]
    np.testing.assert_array_equal(coordinator.evaluate("x * 2 + 1", operands, (slice(15, 117), slice(3, 47))), want)
    assert set(region.asked) == set(range(1, 12))

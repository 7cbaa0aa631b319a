"""Read plans at the storage limit: chunks decoded as they arrive, no request a plan makes redundant."""

from __future__ import annotations

import time

import blosc2
import numpy as np
import pytest

import catclient
from catclient.wire import selection as wire_selection
from tests.test_catclient import publish, wait_for


@pytest.fixture(scope="module")
def rows(stack, api_url):
    """8 MB of float64 (4000 x 250) in 16 chunks of 250 rows, blocks of 25 rows, as root ``plans``."""
    data = np.random.default_rng(7).normal(size=(4000, 250))
    publish(stack, "plans", "rows.b2nd", blosc2.asarray(data, chunks=(250, 250), blocks=(25, 250)))
    with catclient.Client(api_url) as c:
        wait_for(c, "plans/rows.b2nd")
    return data


def _no_serial_pass(monkeypatch):
    """Make the decode-everything-at-the-end path fail: plan reads must not take it."""

    def refuse(*_a, **_k):
        raise AssertionError("a plan read assembled all chunks, then decoded them in one pass")

    monkeypatch.setattr(wire_selection, "select_ndarray", refuse)


@pytest.mark.parametrize("key", [None, "1003:2871", "17:3999, 5:200", "2000"], ids=str)
def test_plan_reads_decode_in_the_workers_not_in_a_second_pass(rows, api_url, monkeypatch, key):
    _no_serial_pass(monkeypatch)
    with catclient.Client(api_url, plan_threshold=0, cache_dir=None) as c:
        got = c.fetch("plans/rows.b2nd", key)
        want = rows if key is None else rows[catclient.client.normalize_key(key, 2)[0]]
        assert got.shape == want.shape and np.array_equal(got, want)
        assert c.stats.plan_requests == 1 and c.stats.chunk_downloads > 0
        # a selection as a Blosc2 object goes the same way, then is compressed
        if key is not None:
            arr = c.get_slice("plans/rows.b2nd", key)
            assert isinstance(arr, blosc2.NDArray) and np.array_equal(arr[()], want)


def test_cached_chunks_are_decoded_the_same_way(rows, api_url, monkeypatch, tmp_path):
    with catclient.Client(api_url, plan_threshold=0, cache_dir=tmp_path) as c:
        c.fetch("plans/rows.b2nd", "0:1000")
        _no_serial_pass(monkeypatch)
        got = c.fetch("plans/rows.b2nd", "500:1500")  # 2 chunks from the local cache, 2 from S3
        assert c.stats.cache_hits == 2 and np.array_equal(got, rows[500:1500])


def test_a_second_plan_read_asks_no_info(rows, api_url):
    with catclient.Client(api_url, plan_threshold=0, cache_dir=None) as c:
        c.fetch("plans/rows.b2nd", "0:400")
        first = c.stats.api_requests
        assert first == 2  # /api/info (how big, which way), then the plan
        assert np.array_equal(c.fetch("plans/rows.b2nd", "100:3000"), rows[100:3000])
        assert c.stats.api_requests == first + 1  # the plan only
        assert np.array_equal(c.fetch("plans/rows.b2nd"), rows)
        assert c.stats.api_requests == first + 2


def test_a_dataset_replaced_since_is_read_as_it_is_now(stack, api_url):
    before = np.arange(3000, dtype="i8").reshape(300, 10)
    publish(stack, "plans", "changes.b2nd", blosc2.asarray(before, chunks=(50, 10)))
    with catclient.Client(api_url, plan_threshold=0, cache_dir=None) as c:
        wait_for(c, "plans/changes.b2nd")
        assert np.array_equal(c.fetch("plans/changes.b2nd", "0:200"), before[:200])
        # a new version with another shape and dtype: the plan's geometry is the one used
        after = np.arange(2000, dtype="f4").reshape(100, 20)
        publish(stack, "plans", "changes.b2nd", blosc2.asarray(after, chunks=(30, 20)))
        deadline = time.monotonic() + 30  # until the region's head memo sees the new version
        while True:
            got = c.fetch("plans/changes.b2nd", "0:100")
            if got.shape == (100, 20) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert got.dtype == np.float32 and np.array_equal(got, after)
        # a key the old shape took and the new one does not: refused, as /api/info would say
        with pytest.raises(catclient.BadRequest):
            c.fetch("plans/changes.b2nd", "0:50, 0:10, 3")

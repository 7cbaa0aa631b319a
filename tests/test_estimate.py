"""Estimates over real HTTP: they match what the read then does (X-Cat-Cache), and the budget header."""

from __future__ import annotations

import blosc2
import httpx
import numpy as np
import pytest

import catclient
from tests.timetravel_world import world

PATH = "est/grid.b2nd"


def _figures(response: httpx.Response) -> dict[str, int]:
    parts = dict(p.split("=") for p in response.headers["X-Cat-Cache"].split())
    return {k: int(v) for k, v in parts.items()}


def _grid(w):
    values = np.random.default_rng(3).random((400, 300))
    w.publish("est", "grid.b2nd", values, chunks=(100, 100))
    return values


def test_the_estimate_is_what_the_read_then_does():
    with world() as w:
        values = _grid(w)
        est = httpx.get(f"{w.url}/api/estimate/{PATH}", params={"slice_": "150:250, 50:120"}).json()
        assert est["chunks"] == 4 and est["s3_gets"] == 4 and est["route"] == "api"
        assert est["decompressed_bytes"] == 4 * 100 * 100 * 8
        assert est["cost_usd"]["total"] > 0 and est["cost_usd"]["s3_gets"] == pytest.approx(4 * 0.0004 / 1000)
        r = httpx.get(f"{w.url}/api/fetch/{PATH}", params={"slice_": "150:250, 50:120"})
        assert np.array_equal(blosc2.ndarray_from_cframe(r.content)[:], values[150:250, 50:120])
        assert _figures(r) == {"hits": 0, "misses": est["s3_gets"], "origin-bytes": est["compressed_bytes"]}
        whole = httpx.get(f"{w.url}/api/estimate/{PATH}").json()
        assert whole["chunks"] == 12 and whole["decompressed_bytes"] == 0  # framed as stored
        dl = httpx.get(f"{w.url}/api/download/{PATH}")
        # 4 chunks are in the region now: the other 8 come from the origin
        assert _figures(dl)["misses"] + _figures(dl)["hits"] == whole["s3_gets"]
        assert _figures(dl)["origin-bytes"] == whole["compressed_bytes"] - est["compressed_bytes"]
        with catclient.Client(w.url) as client:
            assert client.estimate(PATH, "150:250, 50:120") == est
            assert client.get(PATH).estimate((slice(0, 100), slice(0, 100)))["chunks"] == 1


def test_estimates_of_a_version_and_past_the_answer_limit():
    with world(response_limit=20_000) as w:
        values = _grid(w)
        changed = values.copy()
        changed[0, 0] = -1
        w.publish("est", "grid.b2nd", changed, chunks=(100, 100))
        est = httpx.get(f"{w.url}/api/estimate/{PATH}", params={"version": 1}).json()
        assert est["version"] == 1 and est["route"] == "plan"  # ~1 MB: only a read plan can serve it
        assert httpx.get(f"{w.url}/api/fetch/{PATH}").status_code == 413
        assert httpx.get(f"{w.url}/api/estimate/{PATH}", params={"slice_": "0:1, 0:1"}).json()["route"] == "api"
        assert httpx.get(f"{w.url}/api/estimate/{PATH}", params={"slice_": "1, 2, 3"}).status_code == 400
        assert httpx.get(f"{w.url}/api/estimate/est").status_code == 400


def test_the_budget_header_refuses_a_read_over_it_with_413_and_the_estimate():
    with world() as w:
        _grid(w)
        params = {"slice_": "150:250, 50:120"}
        est = httpx.get(f"{w.url}/api/estimate/{PATH}", params=params).json()
        over = {"X-Cat-Max-Bytes": str(est["compressed_bytes"] - 1)}
        r = httpx.get(f"{w.url}/api/fetch/{PATH}", params=params, headers=over)
        assert r.status_code == 413
        assert "X-Cat-Max-Bytes" in r.json()["detail"] and r.json()["estimate"] == est
        r = httpx.get(f"{w.url}/api/download/{PATH}", headers=over)
        assert r.status_code == 413 and r.json()["estimate"]["chunks"] == 12
        ok = httpx.get(f"{w.url}/api/fetch/{PATH}", params=params, headers={"X-Cat-Max-Bytes": str(est["compressed_bytes"])})
        assert ok.status_code == 200 and _figures(ok)["origin-bytes"] == est["compressed_bytes"]
        bad = httpx.get(f"{w.url}/api/fetch/{PATH}", params=params, headers={"X-Cat-Max-Bytes": "lots"})
        assert bad.status_code == 400

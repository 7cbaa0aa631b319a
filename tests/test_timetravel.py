"""Every kept version readable through ?version= (Caterva2-style requests and catclient), history, retention."""

from __future__ import annotations

import blosc2
import httpx
import numpy as np
import pytest

import catclient
from functions.engine import gc, layout
from functions.engine.model import Manifest
from tests.timetravel_world import world

PATH = "tt/series.b2nd"


def _versions():
    """v1, then v2 changing chunk 2, then v3 changing chunks 5 and 7 (10 chunks of 100)."""
    v1 = np.arange(1000, dtype=np.int64)
    v2 = v1.copy()
    v2[250] = -2
    v3 = v2.copy()
    v3[510] = -3
    v3[777] = -3
    return [v1, v2, v3]


@pytest.fixture(scope="module")
def published():
    with world() as w:
        results = [w.publish("tt", "series.b2nd", v) for v in _versions()]
        assert [r.changed_chunks for r in results] == [list(range(10)), [2], [5, 7]]
        yield w


def _fetch(url, version, **params):
    r = httpx.get(f"{url}/api/fetch/{PATH}", params={"version": version, **params})
    assert r.status_code == 200, r.text
    return blosc2.ndarray_from_cframe(r.content)[:]


def test_every_version_reads_back_through_caterva2_requests(published):
    url = published.url
    for n, values in enumerate(_versions(), start=1):
        assert np.array_equal(_fetch(url, n), values)
        assert np.array_equal(_fetch(url, n, slice_="240:260"), values[240:260])
        info = httpx.get(f"{url}/api/info/{PATH}", params={"version": n}).json()
        assert info["version"] == n and info["shape"] == [1000]
        chunk = httpx.get(f"{url}/api/chunk/{PATH}", params={"version": n, "nchunk": 2})
        assert np.array_equal(np.frombuffer(blosc2.decompress(chunk.content), np.int64), values[200:300])
        dl = httpx.get(f"{url}/api/download/{PATH}", params={"version": n})
        assert np.array_equal(blosc2.ndarray_from_cframe(dl.content)[:], values)
        plan = httpx.get(f"{url}/api/plan/{PATH}", params={"version": n, "slice_": "0:300"}).json()
        assert plan["version"] == n and [ref["nchunk"] for ref in plan["chunk_refs"]] == [0, 1, 2]
    # Without ?version=, the current one, as Caterva2's clients read it
    current = httpx.get(f"{url}/api/info/{PATH}").json()
    assert current["version"] == 3


def test_every_version_reads_back_through_catclient(published):
    with catclient.Client(published.url) as client:
        for n, values in enumerate(_versions(), start=1):
            ds = client.get(PATH, version=n)
            assert ds.version == n
            assert np.array_equal(ds[:], values)
            assert np.array_equal(ds[240:260], values[240:260])
            assert np.array_equal(client.at_version(n).fetch(PATH, "700:800"), values[700:800])
        assert client.get(PATH).version == 3  # the client itself stays on the current version


def test_history_lists_the_versions_with_their_changed_chunks(published):
    r = httpx.get(f"{published.url}/api/history/{PATH}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["current"] == 3 and body["more"] is False
    lines = body["versions"]
    assert [v["version"] for v in lines] == [3, 2, 1]
    assert [v["changed_chunks"] for v in lines] == [2, 1, 10]
    assert [v["current"] for v in lines] == [True, False, False]
    assert all(v["shape"] == [1000] and v["nchunks"] == 10 and v["cbytes"] > 0 for v in lines)
    page = httpx.get(f"{published.url}/api/history/{PATH}", params={"limit": 1, "before": 3}).json()
    assert [v["version"] for v in page["versions"]] == [2] and page["more"] is True
    with catclient.Client(published.url) as client:
        assert [v["version"] for v in client.get(PATH).history()] == [3, 2, 1]


def test_bad_versions_answer_clear_4xx(published):
    url = published.url
    r = httpx.get(f"{url}/api/fetch/{PATH}", params={"version": 9})
    assert r.status_code == 404 and "no version 9" in r.json()["detail"]
    assert httpx.get(f"{url}/api/fetch/{PATH}", params={"version": 0}).status_code == 400
    assert httpx.get(f"{url}/api/fetch/{PATH}", params={"version": "x"}).status_code == 400
    assert httpx.get(f"{url}/api/history/tt").status_code == 400  # a root has no versions
    assert httpx.get(f"{url}/api/history/tt/nope.b2nd").status_code == 404


def test_gc_with_retention_two_collects_v1_and_its_chunks():
    with world() as w:
        results = [w.publish("tt", "series.b2nd", v) for v in _versions()]
        assert results[-1].version == 3
        v1 = _manifest(w, 1)
        only_v1 = {r.digest for r in v1.refs} - {r.digest for n in (2, 3) for r in _manifest(w, n).refs}
        assert len(only_v1) == 1  # chunk 2 of v1: v2 replaced it
        w.clock.advance(10)
        # Retention 2 (CAT_KEEP_VERSIONS=2: the current one and one earlier); v1 committed 10 s ago
        kept = gc.collect(w.origin, grace=5, delete=True, keep=1, keep_seconds=20, clock=w.clock)
        assert kept.manifests.deleted.count == 0, "CAT_KEEP_SECONDS keeps a version committed within it"
        report = gc.collect(w.origin, grace=5, delete=True, keep=1, clock=w.clock)
        assert report.manifests.deleted.count == 1 and report.chunks.deleted.count == 1
        assert not w.origin.exists(layout.chunk_key(only_v1.pop()))
        r = httpx.get(f"{w.url}/api/fetch/tt/series.b2nd", params={"version": 1})
        assert r.status_code == 404 and "no longer kept" in r.json()["detail"]
        assert httpx.get(f"{w.url}/api/info/tt/series.b2nd", params={"version": 1}).status_code == 404
        for n, values in list(enumerate(_versions(), start=1))[1:]:
            assert np.array_equal(_fetch(w.url, n), values)
        lines = httpx.get(f"{w.url}/api/history/tt/series.b2nd").json()["versions"]
        assert [(v["version"], v["changed_chunks"]) for v in lines] == [(3, 2), (2, None)]


def _manifest(w, version: int) -> Manifest:
    keys = [k for k in w.origin.list(f"m/tt/series.b2nd/{version}-")]
    assert len(keys) == 1
    return Manifest.from_bytes(w.origin.get(keys[0]).data)


def test_an_orphan_manifest_of_a_lost_race_is_never_read_as_that_version():
    with world() as w:
        values = _versions()
        w.publish("tt", "series.b2nd", values[0])
        w.publish("tt", "series.b2nd", values[1])
        w.publish("tt", "series.b2nd", values[2])
        # A racing publisher's manifest of version 2 that lost the head's conditional write
        real = _manifest(w, 2)
        orphan = Manifest("tt", "series.b2nd", 2, real.mtime, _manifest(w, 3).content, real.previous)
        key = layout.manifest_key("tt", "series.b2nd", 2, "f" * 64)
        w.origin.put(key, orphan.to_bytes())
        assert np.array_equal(_fetch(w.url, 2), values[1])
        lines = httpx.get(f"{w.url}/api/history/tt/series.b2nd").json()["versions"]
        assert [(v["version"], v["changed_chunks"]) for v in lines] == [(3, 2), (2, 1), (1, 10)]


def test_a_version_newer_than_the_regions_copy_is_asked_of_the_origin():
    """A feed reader may name a version this region has not heard of yet (its event is on its way)."""
    with world() as w:
        values = _versions()
        w.publish("tt", "series.b2nd", values[0])
        assert httpx.get(f"{w.url}/api/info/tt/series.b2nd").json()["version"] == 1  # copied, trusted 60 s
        w.publish("tt", "series.b2nd", values[1])  # no event reaches the region
        assert httpx.get(f"{w.url}/api/info/tt/series.b2nd").json()["version"] == 1
        assert np.array_equal(_fetch(w.url, 2), values[1])
        r = httpx.get(f"{w.url}/api/fetch/tt/series.b2nd", params={"version": 3})
        assert r.status_code == 404 and "no version 3" in r.json()["detail"]


def test_cat_admin_gc_takes_its_retention_from_the_settings(monkeypatch):
    from functions import admin

    monkeypatch.setenv("CAT_KEEP_VERSIONS", "3")
    monkeypatch.setenv("CAT_KEEP_SECONDS", "86400")
    args = admin._parser().parse_args(["gc"])
    assert (args.keep_versions, args.keep_seconds) == (2, 86400)  # the current one and two earlier
    monkeypatch.delenv("CAT_KEEP_VERSIONS")
    monkeypatch.delenv("CAT_KEEP_SECONDS")
    args = admin._parser().parse_args(["gc"])
    assert (args.keep_versions, args.keep_seconds) == (0, 0)

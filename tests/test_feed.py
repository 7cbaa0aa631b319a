"""The change feed over real HTTP: order, paging, cursors on events, collected versions, races, healing."""

from __future__ import annotations

import json
import threading

import httpx
import numpy as np
import pytest

import catclient
from functions.engine import feed, gc, healing, layout
from functions.engine.model import Catalog
from functions.engine.sync import apply_messages
from tests.timetravel_world import region_over, world


def _changes(url, root, since=None, limit=100):
    params = {"limit": limit} | ({"since": since} if since else {})
    r = httpx.get(f"{url}/api/changes/{root}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _publish_three(w):
    base = np.arange(1000, dtype=np.int64)
    w.publish("fd", "a.b2nd", base)  # seq 1: a v1 (10 chunks)
    w.publish("fd", "b.b2nd", base * 2)  # seq 2: b v1
    changed = base.copy()
    changed[420] = -1
    w.publish("fd", "a.b2nd", changed)  # seq 3: a v2, chunk 4


def test_changes_after_a_cursor_in_commit_order_and_paged():
    with world() as w:
        _publish_three(w)
        page = _changes(w.url, "fd")
        got = [(c["path"], c["version"], c["type"]) for c in page["changes"]]
        assert got == [("a.b2nd", 1, "published"), ("b.b2nd", 1, "published"), ("a.b2nd", 2, "published")]
        assert page["changes"][2]["changed_chunks"] == [4] and page["changes"][0]["changed_chunks"] == list(range(10))
        assert [c["seq"] for c in page["changes"]] == [1, 2, 3] and page["more"] is False
        # The events carry the same cursors, in the same order
        assert [e.cursor for e in w.sink.events] == [c["cursor"] for c in page["changes"]]
        # Nothing after the last cursor; after the first, the other two
        assert _changes(w.url, "fd", page["cursor"])["changes"] == []
        assert [c["seq"] for c in _changes(w.url, "fd", page["changes"][0]["cursor"])["changes"]] == [2, 3]
        # Page by page, one change at a time: each once, none missed
        seen, cursor = [], None
        while True:
            one = _changes(w.url, "fd", cursor, limit=1)
            seen += [c["seq"] for c in one["changes"]]
            cursor = one["cursor"]
            if not one["more"]:
                break
        assert seen == [1, 2, 3]
        w.services.publisher.delete("fd", "b.b2nd")
        last = _changes(w.url, "fd", cursor)["changes"]
        assert [(c["type"], c["path"], c["version"]) for c in last] == [("deleted", "b.b2nd", 2)]
        with catclient.Client(w.url) as client:
            assert [c["seq"] for c in client.iter_changes("fd")] == [1, 2, 3, 4]


def test_bad_cursors_and_roots_answer_4xx():
    with world() as w:
        _publish_three(w)
        w.publish("other", "x.b2nd", np.zeros(10))
        foreign = _changes(w.url, "other")["cursor"]
        for bad in ("nonsense", "c1.!!!", foreign):
            r = httpx.get(f"{w.url}/api/changes/fd", params={"since": bad})
            assert r.status_code == 400 and "cursor" in r.json()["detail"], bad
        assert httpx.get(f"{w.url}/api/changes/nope").status_code == 404
        assert httpx.get(f"{w.url}/api/changes/fd", params={"limit": 0}).status_code == 400
        assert httpx.get(f"{w.url}/api/changes/fd/a.b2nd").status_code in (400, 404)


def test_a_cursor_from_before_a_collected_version_still_yields_every_later_change():
    with world() as w:
        values = np.arange(1000, dtype=np.int64)
        w.publish("fd", "a.b2nd", values)
        cursor = _changes(w.url, "fd")["cursor"]  # a subscriber at v1 goes offline
        for v in (2, 3, 4):
            values = values.copy()
            values[v * 100] = -v
            w.publish("fd", "a.b2nd", values)
        w.clock.advance(100)
        report = gc.collect(w.origin, grace=10, delete=True, clock=w.clock)
        assert report.manifests.deleted.count == 3  # v1..v3 are gone, only v4 is kept
        assert httpx.get(f"{w.url}/api/fetch/fd/a.b2nd", params={"version": 2}).status_code == 404
        later = _changes(w.url, "fd", cursor)["changes"]
        assert [(c["version"], c["changed_chunks"]) for c in later] == [(2, [2]), (3, [3]), (4, [4])]


def test_concurrent_publishers_get_one_total_order_with_no_gap():
    with world() as w:
        def publish(n):
            for v in range(3):
                w.publish("race", f"d{n}.b2nd", np.full(100, n * 10 + v))

        threads = [threading.Thread(target=publish, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        changes = _changes(w.url, "race", limit=1000)["changes"]
        assert [c["seq"] for c in changes] == list(range(1, 19))
        for n in range(6):
            assert [c["version"] for c in changes if c["path"] == f"d{n}.b2nd"] == [1, 2, 3]
        catalog = Catalog.from_bytes(w.origin.get(layout.catalog_key("race")).data)
        assert catalog.version == 18 and len(catalog.datasets) == 6
        # Whichever writer created the catalog (maybe one finishing another's claim) registered the root
        assert "race" in json.loads(w.origin.get(layout.ROOTS_KEY).data)["roots"]


def test_a_claim_left_by_a_crash_is_completed_by_the_next_commit(monkeypatch):
    with world() as w:
        w.publish("crash", "a.b2nd", np.zeros(100))
        real = feed._complete
        calls = {"n": 0}

        def crash_once(store, root, seq, attempts, entry=None, read=None):
            calls["n"] += 1
            if calls["n"] == 1 and entry is not None:
                raise RuntimeError("publisher died between the claim and the catalog")
            return real(store, root, seq, attempts, entry, read)

        monkeypatch.setattr(feed, "_complete", crash_once)
        with pytest.raises(RuntimeError):
            w.publish("crash", "b.b2nd", np.ones(100))
        w.publish("crash", "c.b2nd", np.ones(100) * 2)
        changes = _changes(w.url, "crash")["changes"]
        assert [(c["seq"], c["path"]) for c in changes] == [(1, "a.b2nd"), (2, "b.b2nd"), (3, "c.b2nd")]
        catalog = Catalog.from_bytes(w.origin.get(layout.catalog_key("crash")).data)
        assert catalog.version == 3 and set(catalog.datasets) == {"a.b2nd", "b.b2nd", "c.b2nd"}


def _bodies(events):
    return [json.dumps(e.to_json()) for e in events]


def test_a_region_that_missed_events_heals_from_the_feed():
    with world() as w:
        other = region_over(w.origin, w.clock)  # another region: head copies trusted for a minute
        values = np.arange(1000, dtype=np.int64)
        w.publish("heal", "a.b2nd", values)
        w.publish("heal", "b.b2nd", values)
        apply_messages(other, _bodies(w.sink.events))
        assert other.head("heal", "a.b2nd").version == 1
        assert healing.applied_seq(other, "heal") == 2
        delivered = len(w.sink.events)
        changed = values.copy()
        changed[150] = -1
        w.publish("heal", "a.b2nd", changed)  # its event is lost
        w.publish("heal", "b.b2nd", changed)  # this one arrives
        lost, arrives = w.sink.events[delivered:]
        assert (lost.seq, arrives.seq) == (3, 4)
        other.forget(layout.head_key("heal", "a.b2nd"))  # not the memo: the cache bucket's copy is at v1
        assert other.head("heal", "a.b2nd").version == 1, "without the feed, a.b2nd is stale for the TTL"
        outcome = apply_messages(other, _bodies([arrives]))
        assert "healed 2 missed change(s)" in outcome[0].detail
        other.forget(layout.head_key("heal", "a.b2nd"))
        assert other.head("heal", "a.b2nd").version == 2
        assert healing.applied_seq(other, "heal") == 4
        # A loss no later event reveals: the timer compares positions and heals
        w.publish("heal", "a.b2nd", values)  # v3; its event is lost too
        assert healing.heal_all(other)["heal"].changes == 1
        other.forget(layout.head_key("heal", "a.b2nd"))
        assert other.head("heal", "a.b2nd").version == 3
        assert healing.heal_all(other) == {}  # nothing behind: nothing read


def test_a_subscribed_region_heals_with_the_missed_chunks_prefetched():
    with world() as w:
        other = region_over(w.origin, w.clock)
        other.set_subscribed("sub", True)
        values = np.arange(1000, dtype=np.int64)
        w.publish("sub", "a.b2nd", values)
        apply_messages(other, _bodies(w.sink.events))
        before = len(w.sink.events)
        for i in (1, 2):
            values = values.copy()
            values[i * 100 + 5] = -i
            w.publish("sub", "a.b2nd", values)
        w.publish("sub", "z.b2nd", np.zeros(10))  # other bytes: its prefetch fetches none of a.b2nd
        apply_messages(other, _bodies(w.sink.events[-1:]))  # v2 and v3 of a.b2nd were lost
        manifest = other.dataset("sub", "a.b2nd")
        assert manifest.version == 3
        for i in (1, 2):  # the changed chunks of both missed versions are in the region's bucket
            assert other.cache.exists(layout.chunk_key(manifest.refs[i].digest))
        assert len(w.sink.events) == before + 3


def test_a_catalog_ttl_miss_heals_the_root_before_its_other_copies_expire():
    with world() as w:
        other = region_over(w.origin, w.clock)
        other.on_revalidate = healing.revalidation_hook(other)
        other.set_subscribed("ttl", True)
        values = np.arange(1000, dtype=np.int64)
        w.publish("ttl", "a.b2nd", values)
        w.publish("ttl", "b.b2nd", values)
        apply_messages(other, _bodies(w.sink.events))
        other.catalog("ttl")  # the region's copy, trusted for a minute
        changed = values.copy()
        changed[950] = -1
        w.publish("ttl", "b.b2nd", changed)  # its event is lost
        w.clock.advance(61)
        assert other.catalog("ttl").version == 3  # the TTL miss read the catalog again, and healed
        copy = json.loads(other.cache.get(layout.head_key("ttl", "b.b2nd")).data)["value"]
        assert copy["version"] == 2, "b.b2nd's copy was refreshed by the feed, not by its own TTL"
        manifest = other.manifest_at(copy["manifest"])
        assert other.cache.exists(layout.chunk_key(manifest.refs[9].digest))  # subscribed: prefetched
        assert healing.applied_seq(other, "ttl") == 3

"""catclient sync over real HTTP: only changed chunks move, files land atomically, syncs resume, idle syncs cost one request."""

from __future__ import annotations

import json

import blosc2
import numpy as np
import pytest

import catclient
from catclient import cli, sync
from functions.engine.content import load_object
from tests.timetravel_world import world


def _manifest_sizes(w, root, path, indices):
    m = w.region.dataset(root, path)
    return sum(m.refs[i].size for i in indices)


def test_a_second_sync_fetches_exactly_the_changed_chunks_and_a_third_one_request(tmp_path):
    with world() as w:
        values = np.random.default_rng(5).random(10_000)  # 100 chunks of 100
        w.publish("sy", "big.b2nd", values)
        local = tmp_path / "mirror"
        with catclient.Client(w.url) as client:
            first = sync.sync(client, "sy", local)
            assert first.written == 1 and first.chunks_fetched == 100
            assert np.array_equal(blosc2.open(str(local / "big.b2nd"))[:], values)
            values = values.copy()
            for i in (7, 42, 99):
                values[i * 100 + 3] = -1
            result = w.publish("sy", "big.b2nd", values)
            assert result.changed_chunks == [7, 42, 99]
            second = sync.sync(client, "sy", local)
            assert second.changes == 1 and second.chunks_fetched == 3 and second.chunks_reused == 97
            assert second.bytes_fetched == _manifest_sizes(w, "sy", "big.b2nd", [7, 42, 99])
            assert second.root_cbytes == _manifest_sizes(w, "sy", "big.b2nd", range(100))
            assert np.array_equal(blosc2.open(str(local / "big.b2nd"))[:], values)
            third = sync.sync(client, "sy", local)
            assert third.requests == 1 and third.changes == 0 and third.bytes_fetched == 0


def test_an_interrupted_sync_resumes_and_deletions_remove_files(tmp_path, monkeypatch):
    with world() as w:
        w.publish("sy", "a.b2nd", np.arange(1000))
        w.publish("sy", "b.b2nd", np.arange(1000) * 2)
        frame = blosc2.SChunk(chunksize=400, data=b"x" * 1000, cparams=blosc2.CParams(typesize=1))
        w.publisher.publish("sy", "c.b2frame", load_object(frame))
        w.publish("sy", "d/e.b2nd", np.zeros(10))
        local = tmp_path / "m"
        with catclient.Client(w.url) as client:
            sync.sync(client, "sy", local)
            assert (local / "c.b2frame").exists() and (local / "d" / "e.b2nd").exists()
            w.publish("sy", "a.b2nd", np.arange(1000) + 1)
            w.publish("sy", "b.b2nd", np.arange(1000) + 2)
            w.publisher.delete("sy", "d/e.b2nd")
            real = sync._apply
            calls = {"n": 0}

            def dies_on_the_second(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == 2:
                    raise KeyboardInterrupt("interrupted")
                return real(*args, **kwargs)

            monkeypatch.setattr(sync, "_apply", dies_on_the_second)
            with pytest.raises(KeyboardInterrupt):
                sync.sync(client, "sy", local)
            monkeypatch.setattr(sync, "_apply", real)
            assert np.array_equal(blosc2.open(str(local / "a.b2nd"))[:], np.arange(1000) + 1)
            assert not any(p.name.endswith(".sync-tmp") for p in local.rglob("*"))
            resumed = sync.sync(client, "sy", local)
            assert resumed.unchanged == 1 and resumed.written == 1 and resumed.removed == 1
            assert np.array_equal(blosc2.open(str(local / "b.b2nd"))[:], np.arange(1000) + 2)
            assert not (local / "d" / "e.b2nd").exists()
            assert blosc2.open(str(local / "c.b2frame"))[:] == b"x" * 1000


def test_sync_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CATCLIENT_CONFIG_DIR", str(tmp_path / "config"))
    with world() as w:
        w.publish("sy", "a.b2nd", np.arange(1000))
        assert cli.main(["--url", w.url, "sync", "sy", str(tmp_path / "m"), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["written"] == 1 and report["chunks_fetched"] == 10
        assert cli.main(["--url", w.url, "sync", "sy", str(tmp_path / "m")]) == 0
        out = capsys.readouterr().out
        assert "0 change(s)" in out and "1 request(s)" in out

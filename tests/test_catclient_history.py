"""catclient's versions, feed and estimates: the library and the command line over real HTTP."""

from __future__ import annotations

import json

import blosc2
import numpy as np
import pytest

from catclient import cli
from catclient.cli_history import split_version
from tests.timetravel_world import world

PATH = "cl/series.b2nd"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("CATCLIENT_URL", "CATCLIENT_TOKEN", "CATCLIENT_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CATCLIENT_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def served():
    with world() as w:
        values = np.arange(1000, dtype=np.int64)
        w.publish("cl", "series.b2nd", values)
        w.publish("cl", "series.b2nd", values * 2)
        yield w


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_split_version():
    assert split_version("cl/series.b2nd@2") == ("cl/series.b2nd", 2)
    assert split_version("@public/x.b2nd@13") == ("@public/x.b2nd", 13)
    assert split_version("@public") == ("@public", None)
    assert split_version("cl/series.b2nd") == ("cl/series.b2nd", None)


def test_history_command(capsys, served):
    code, out, err = run(capsys, "--url", served.url, "history", PATH)
    assert code == 0, err
    assert "current version 2" in out and "v1" in out and "10/10 chunk(s) changed" in out
    code, out, _ = run(capsys, "--url", served.url, "history", PATH, "--json")
    assert [v["version"] for v in json.loads(out)["versions"]] == [2, 1]


def test_show_at_a_version(capsys, served):
    code, out, err = run(capsys, "--url", served.url, "show", f"{PATH}@1[0:3]", "--json")
    assert code == 0, err
    assert json.loads(out) == [0, 1, 2]
    code, out, _ = run(capsys, "--url", served.url, "show", f"{PATH}[0:3]", "--json")
    assert json.loads(out) == [0, 2, 4]
    code, _, err = run(capsys, "--url", served.url, "show", f"{PATH}@7[0:3]")
    assert code == 2 and "no version 7" in err


def test_download_at_a_version(capsys, served, tmp_path):
    code, _, err = run(capsys, "--url", served.url, "download", f"{PATH}@1", str(tmp_path / "v1.b2nd"))
    assert code == 0, err
    assert np.array_equal(blosc2.open(str(tmp_path / "v1.b2nd"))[:], np.arange(1000))


def test_dry_run_reads_nothing_and_prints_the_estimate(capsys, served, tmp_path):
    before = served.region.lru._size
    code, out, err = run(capsys, "--url", served.url, "show", f"{PATH}@1[100:300]", "--dry-run", "--json")
    assert code == 0, err
    est = json.loads(out)
    assert est["version"] == 1 and est["chunks"] == 2 and est["route"] == "api"
    code, out, _ = run(capsys, "--url", served.url, "show", f"{PATH}[100:300]", "--dry-run")
    assert "2 chunk(s)" in out and "S3 GET" in out and "$" in out
    code, out, _ = run(capsys, "--url", served.url, "download", PATH, str(tmp_path / "x"), "--dry-run")
    assert code == 0 and "10 chunk(s)" in out and not (tmp_path / "x").exists()
    assert served.region.lru._size == before, "a dry run fetches no chunk"


def test_changes_command(capsys, served):
    code, out, err = run(capsys, "--url", served.url, "changes", "cl", "--json")
    assert code == 0, err
    page = json.loads(out)
    assert [c["version"] for c in page["changes"]] == [1, 2]
    code, out, _ = run(capsys, "--url", served.url, "changes", "cl", "--since", page["changes"][0]["cursor"])
    assert "v2" in out and "v1" not in out and "cursor: c1." in out


# --------------------------------------------------------------------------- on the local stack


def test_history_names_the_user_who_committed_and_the_personal_feed(stack, api_url, tmp_path):
    import catclient
    from tests.test_catclient import writable_credentials

    user, password = writable_credentials(stack, api_url)
    local = tmp_path / "mine.b2nd"
    with catclient.Client(api_url, (user, password)) as client:
        for n in (1, 2):
            blosc2.asarray(np.arange(100) * n, urlpath=str(local), mode="w")
            client.upload(local, "@personal/hist/mine.b2nd")
        lines = client.history("@personal/hist/mine.b2nd")["versions"]
        current = lines[0]["version"]
        assert [(v["version"], v["author"]) for v in lines][:2] == [(current, user), (current - 1, user)]
        assert np.array_equal(client.get("@personal/hist/mine.b2nd", version=lines[1]["version"])[:], np.arange(100))
        changes = list(client.iter_changes("@personal"))
        assert [c["path"] for c in changes][-2:] == ["hist/mine.b2nd"] * 2
        assert "@personal." not in json.dumps(changes), "no storage root in the answer"
    with catclient.Client(api_url) as anonymous, pytest.raises(catclient.CatClientError):
        anonymous.changes("@personal")


def test_events_through_sns_carry_cursors_the_other_region_records(stack):
    import time

    from functions.engine import feed, healing

    publisher = stack.regions[0].services.publisher
    other = stack.regions[1].services.region
    for n in range(3):
        arr = blosc2.asarray(np.full(100, n), chunks=(50,))
        from functions.engine.content import load_object

        publisher.publish("feedstack", "f.b2nd", load_object(arr))
    latest = feed.latest_seq(publisher.store, "feedstack")
    assert latest == 3
    deadline = time.monotonic() + 10
    while healing.applied_seq(other, "feedstack") != latest:
        assert time.monotonic() < deadline, "the other region never recorded the feed position"
        time.sleep(0.05)

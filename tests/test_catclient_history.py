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

"""The conformance runner's own logic: the expected-failure list, crash detection, the verdict."""

from __future__ import annotations

import json

import pytest

from infra import conformance as conf


def test_the_checked_in_list_parses_and_every_line_has_a_reason():
    for line in conf.read_expected():
        assert line.mode in ("*", *conf.MODES) and line.reason and "::" in line.pattern


def test_a_line_without_a_reason_is_refused(tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text("login test_api.py::test_x\n")
    with pytest.raises(SystemExit, match="reason"):
        conf.read_expected(bad)


def test_patterns_match_by_mode_and_glob():
    line = conf.Expectation("login", "test_api.py::test_lazyudf*", "runs user code")
    assert line.matches("login", "test_api.py::test_lazyudf[a]")
    assert not line.matches("nologin", "test_api.py::test_lazyudf[a]")
    assert not line.matches("login", "test_api.py::test_lazyexpr")
    assert conf.Expectation("*", "test_api.py::test_x", "r").matches("nologin", "test_api.py::test_x")


def test_a_test_that_started_and_never_ended_is_the_crash(tmp_path):
    log = tmp_path / "outcomes.jsonl"
    records = [
        {"nodeid": "test_api.py::test_a", "event": "start"},
        {"nodeid": "test_api.py::test_a", "event": "outcome", "outcome": "passed"},
        {"nodeid": "test_api.py::test_b[x/y]", "event": "start"},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    run = conf.ModuleRun("login", "test_api")
    assert conf._read_log(log, run) == "test_api.py::test_b[x/y]"
    assert run.outcomes == {"test_api.py::test_a": "passed"}


def test_unlisted_failures_fail_and_listed_passes_are_reported():
    run = conf.ModuleRun("login", "test_api")
    run.outcomes = {
        "test_api.py::test_ok": "passed",
        "test_api.py::test_new_bug": "failed",
        "test_api.py::test_known": "crashed",
        "test_api.py::test_fixed": "passed",
    }
    expected = [
        conf.Expectation("*", "test_api.py::test_known", "a crash we know"),
        conf.Expectation("login", "test_api.py::test_fixed", "was broken"),
    ]
    unexpected, fixed = conf.judge([run], expected)
    assert [u.split(":")[0] for u in unexpected] == ["login test_api.py"]
    assert "test_new_bug" in unexpected[0]
    assert fixed == ["login test_api.py::test_fixed"]

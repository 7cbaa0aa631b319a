"""cat-publish: a directory becomes a root in the origin, visible through every region."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import caterva2 as cat2
import numpy as np

from infra.example_data import write_example
from infra.publish import main


def _env_args(stack):
    return ["--bucket", stack.resources["plan"].origin_bucket, "--topic-arn", stack.resources["topic_arn"]]


def test_publish_directory_then_republish_is_noop(stack, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    write_example(tmp_path)
    assert main([str(tmp_path), "--root", "clipub", *_env_args(stack)]) == 0
    out = capsys.readouterr().out
    assert "published  clipub/dir1/ds-2d.b2nd  v1" in out
    summary = [line for line in out.splitlines() if line.startswith("clipub: ")]
    assert summary == [summary[0]] and summary[0].startswith("clipub: 9 of 9 dataset(s) changed")
    assert main([str(tmp_path), "--root", "clipub", "--json", *_env_args(stack)]) == 0
    # The stack's dispatcher runs in this process and logs JSON too: keep cat-publish's lines
    lines = [x for x in map(json.loads, capsys.readouterr().out.strip().splitlines()) if "level" not in x]
    assert {x["status"] for x in lines} == {"unchanged"} and len(lines) == 9
    deadline = time.monotonic() + 3
    for rt in stack.regions:
        with cat2.Client(rt.url) as client:
            while "clipub" not in client.get_roots() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert np.array_equal(
                client.fetch("clipub/dir1/ds-2d.b2nd"), np.arange(200, dtype=np.uint16).reshape(10, 20)
            )


def test_publish_errors_are_one_line_with_exit_codes(stack, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    assert main([str(tmp_path / "missing"), "--root", "x", *_env_args(stack)]) == 1
    assert main([str(tmp_path), "--root", "../etc", *_env_args(stack)]) == 1
    (tmp_path / "bad.b2nd").write_bytes(b"definitely not blosc2")
    assert main([str(tmp_path), "--root", "badroot", *_env_args(stack)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("cat-publish: error:") for line in err) and len(err) == 3


def test_help_is_complete():
    out = subprocess.run(
        [sys.executable, "-m", "infra.publish", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for word in ("--root", "--bucket", "--topic-arn", "--json", "AWS_ENDPOINT_URL"):
        assert word in out


def test_cli_needs_only_the_endpoint_against_the_local_stack(stack, tmp_path):
    # A new user's shell: no region, no credentials, no AWS config files; just the endpoint
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_ENDPOINT_URL": stack.endpoint_url}
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "none")
    data = tmp_path / "data"
    write_example(data)
    out = subprocess.run(
        [sys.executable, "-m", "infra.publish", str(data), "--root", "bare", *_env_args(stack)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "bare: 9 of 9 dataset(s) changed" in out.stdout
    users = subprocess.run(
        [sys.executable, "-m", "functions.admin", "--pool-id", stack.resources["user_pool_id"], "--json",
         "users", "list"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert users.returncode == 0, users.stderr
    assert stack.config.demo_user in users.stdout

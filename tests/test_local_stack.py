"""The local stack itself: persistence across runs, the ready line, the env file, and stopping cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import blosc2
import caterva2 as cat2
import numpy as np
import pytest

from functions.engine.content import load_object
from infra import example_data
from infra.envfile import read_env_file
from infra.local import LocalStack, StackConfig

REPO = Path(__file__).resolve().parent.parent


def test_state_survives_a_restart(tmp_path):
    state = tmp_path / "state"
    values = np.arange(50, dtype=np.int32)
    with LocalStack(StackConfig(port=0, regions=1, state_dir=state)) as stack:
        stack.regions[0].services.publisher.publish("kept", "x.b2nd", load_object(blosc2.asarray(values)))
    assert (state / "cat-local-origin" / "roots.json").is_file()
    with LocalStack(StackConfig(port=0, regions=1, state_dir=state)) as stack:
        with cat2.Client(stack.api_url) as client:
            assert np.array_equal(client.fetch("kept/x.b2nd"), values)


def test_make_run_entry_point_prints_ready_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env_file = tmp_path / ".cat-local.env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "--port", "0", "--regions", "1", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("ready: "):
                ready = json.loads(line[len("ready: ") :])
                break
        assert ready is not None
        for key in (
            "api_url",
            "aws_endpoint_url",
            "origin_bucket",
            "cache_buckets",
            "topic_arn",
            "demo_user",
            "demo_password",
        ):
            assert key in ready
        with cat2.Client(ready["api_url"]) as client:
            assert "example" in client.get_roots()
        # The env file is in place by the time the ready line is printed, for the owner only
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        values = read_env_file(env_file)
        assert values["AWS_ENDPOINT_URL"] == ready["aws_endpoint_url"]
        assert values["CATCLIENT_URL"] == ready["api_url"]
        assert values["CAT_USER_POOL_ID"] == ready["user_pool_id"]
        assert values["CAT_TOPIC_ARN"] == ready["topic_arn"]
        assert values["CAT_ORIGIN_BUCKET"] == ready["origin_bucket"]
        assert values["CAT_DEMO_PASSWORD"] == ready["demo_password"]
        assert (
            values["AWS_DEFAULT_REGION"] and values["AWS_ACCESS_KEY_ID"] and values["AWS_SECRET_ACCESS_KEY"]
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not env_file.exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_tomo_root_leaves_the_source_alone_and_generates_once(tmp_path, monkeypatch):
    source = tmp_path / "root-example"
    shutil.copytree(REPO / "root-example", source, ignore=shutil.ignore_patterns(example_data.TOMO_NAME))
    before = sorted((p.relative_to(source), p.read_bytes()) for p in source.rglob("*") if p.is_file())
    made = []

    def small_stack(path):  # the real one is 64 MiB: the same code path, a tiny volume
        made.append(path)
        blosc2.asarray(np.arange(24, dtype=np.uint16).reshape(2, 3, 4), urlpath=str(path), mode="w")
        return path

    monkeypatch.setattr(example_data, "write_tomography", small_stack)
    dest = tmp_path / ".cache" / "root-tomo"
    (dest / "gone").mkdir(parents=True)
    (dest / "gone" / "stale.b2nd").write_bytes(b"from an older source")
    assert example_data.tomo_root(source, dest) == dest
    example_data.tomo_root(source, dest)
    assert made == [dest / example_data.TOMO_NAME]  # generated once, then reused
    after = sorted((p.relative_to(source), p.read_bytes()) for p in source.rglob("*") if p.is_file())
    assert after == before
    published = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
    assert published == sorted([rel for rel, _ in before] + [Path(example_data.TOMO_NAME)])


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_passes_args_and_writes_the_env_file():
    out = subprocess.run(
        ["make", "-n", "run", "PORT=8123", "ARGS=--tomo --regions 3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-m infra.local --port 8123 --env-file .cat-local.env --tomo --regions 3" in out
    assert "root-example" not in out.split("-m infra.local", 1)[1].splitlines()[0]


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _is_zombie_or_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").exists()
    except OSError:
        return False


def test_a_dead_moto_is_noticed_and_reaped():
    stack = LocalStack(StackConfig(port=0, regions=1, root_dir=None)).start()
    try:
        pid = stack._moto.pid
        os.kill(pid, signal.SIGKILL)
        assert stack.moto_died.wait(10)
        assert not _is_zombie_or_alive(pid)  # reaped by the watcher, not left as a zombie
    finally:
        stack.stop()


def test_make_run_stops_with_a_message_when_moto_dies():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "--port", "0", "--regions", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not proc.stdout.readline().startswith("ready: "):
            pass
        (moto,) = [c for c in _children(proc.pid) if "moto_patch" in Path(f"/proc/{c}/cmdline").read_text()]
        os.kill(moto, signal.SIGKILL)
        assert proc.wait(timeout=30) == 1
        out = proc.stdout.read()
        assert "moto (pid" in out and "moto's server died" in out and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

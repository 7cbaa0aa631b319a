"""The local stack itself: persistence across runs, the ready line, and stopping cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import blosc2
import caterva2 as cat2
import numpy as np

from functions.engine.content import load_object
from infra.local import LocalStack, StackConfig


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "--port", "0", "--regions", "1"],
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
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

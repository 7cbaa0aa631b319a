"""The local stack over an emulator someone else started (LocalStack; here a moto server stands in)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import blosc2
import boto3
import caterva2 as cat2
import httpx
import numpy as np
import pytest

from infra import endpoint, local
from infra.local import LocalStack, StackConfig, free_port

DEADLINE = 60  # seconds for anything asynchronous (a bound on a hang, not a speed check)


@pytest.fixture(scope="module")
def emulator():
    """A plain moto server in its own process, as a LocalStack container would be: not ours to start."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        endpoint.wait_until_up(url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _root(tmp_path: Path, values: np.ndarray) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    blosc2.asarray(values, urlpath=str(root / "ds.b2nd"), mode="w")
    return root


def _wait_for(what: str, check):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {DEADLINE} s")


def _object(s3, bucket: str, key: str):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None


def test_publish_ingest_and_sync_over_an_existing_endpoint(emulator, tmp_path, monkeypatch):
    def no_moto(*args, **kwargs):
        raise AssertionError("the stack started a moto of its own")

    monkeypatch.setattr(local.subprocess, "Popen", no_moto)
    monkeypatch.setattr("moto.server.ThreadedMotoServer", no_moto)
    values = np.arange(300, dtype=np.float64)
    config = StackConfig(
        port=0, regions=2, aws_endpoint=emulator, prefix="ls", root_dir=_root(tmp_path, values), root_name="lsr"
    )
    with LocalStack(config) as stack:
        assert stack._moto is None and stack.ready_info()["aws_endpoint_url"] == emulator
        s3 = boto3.client("s3", endpoint_url=emulator, region_name="us-east-1")
        plan = stack.resources["plan"]
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert {plan.origin_bucket, plan.ingest_bucket, *plan.cache_buckets.values()} <= buckets
        # publish: the root published at start is served
        with cat2.Client(stack.api_url) as client:
            assert np.array_equal(client.fetch("lsr/ds.b2nd"), values)
        # ingest: a drop into the ingest bucket reaches the ingest handler through the emulator's S3→SQS
        dropped = tmp_path / "dropped.b2nd"
        blosc2.asarray(values * 2, urlpath=str(dropped), mode="w")
        s3.put_object(Bucket=plan.ingest_bucket, Key="lsr/dropped.b2nd", Body=dropped.read_bytes())
        # sync: its change event reaches region r2 through the emulator's SNS→SQS, before r2 serves anything
        copy = _wait_for(
            "r2's copy of the new head",
            lambda: _object(s3, plan.cache_buckets["r2"], "h/lsr/dropped.b2nd.json"),
        )
        assert json.loads(copy)["value"]["version"] == 1
        with cat2.Client(stack.regions[1].url) as client:
            assert np.array_equal(client.fetch("lsr/dropped.b2nd"), values * 2)
    assert httpx.get(emulator + "/").status_code < 500, "the emulator is not ours to stop"
    assert _object(s3, plan.origin_bucket, "h/lsr/dropped.b2nd.json"), "its data stays in the emulator"


def test_cat_local_localstack_finds_the_emulator_through_localstack_client(emulator, tmp_path):
    env = {**os.environ, "LOCALSTACK_HOST": emulator.split("//", 1)[1], "PYTHONUNBUFFERED": "1"}
    env.pop("AWS_ENDPOINT_URL", None)  # localstack-client would prefer it
    env_file = tmp_path / ".cat-local.env"
    cmd = [sys.executable, "-m", "infra.local", "--localstack", "--port", "0", "--regions", "1"]
    cmd += ["--root-dir", str(_root(tmp_path, np.arange(10))), "--root-name", "cli", "--env-file", str(env_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        ready = None
        for line in proc.stdout:
            if line.startswith("ready: "):
                ready = json.loads(line[len("ready: ") :])
                break
        assert ready is not None, "no ready line"
        assert ready["aws_endpoint_url"] == emulator
        with cat2.Client(ready["api_url"]) as client:
            assert "cli" in client.get_roots()
        assert "AWS_ENDPOINT_URL=" + emulator in env_file.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert httpx.get(emulator + "/").status_code < 500


def test_endpoint_options_are_checked(monkeypatch):
    assert endpoint.resolve(None, False) is None
    assert endpoint.resolve("http://127.0.0.1:4566/", False) == "http://127.0.0.1:4566"
    for url in ("127.0.0.1:4566", "ftp://x"):
        with pytest.raises(endpoint.EndpointError, match="not an endpoint URL"):
            endpoint.resolve(url, False)
    with pytest.raises(endpoint.EndpointError, match="AWS itself"):
        endpoint.resolve("https://s3.eu-west-1.amazonaws.com", False)
    with pytest.raises(endpoint.EndpointError, match="not both"):
        endpoint.resolve("http://127.0.0.1:4566", True)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("LOCALSTACK_HOST", "127.0.0.1:4599")
    assert endpoint.resolve(None, True) == "http://127.0.0.1:4599"
    monkeypatch.setitem(sys.modules, "localstack_client", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "localstack_client.config", None)
    with pytest.raises(endpoint.EndpointError, match=r"pip install 'caterva-serverless\[localstack\]'"):
        endpoint.resolve(None, True)


def test_state_and_an_existing_endpoint_do_not_mix(capsys):
    with pytest.raises(SystemExit) as exit_:
        local.main(["--aws-endpoint", "http://127.0.0.1:9", "--state", "somewhere"])
    assert exit_.value.code == 2 and "--state" in capsys.readouterr().err

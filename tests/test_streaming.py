"""Answers past the buffered limit are streamed: caterva2's own client with big data, every verb.

The session stack's first region is limited as a Lambda is (4.5 MB buffered answers and
request bodies; streamed answers up to 200 MB). The data: a 67 MB uint16 stack of 6.7 MB
chunks (one plane each) and a 34 MB float64 array; the 150 MB download, whose server memory
is measured, runs against a stack of its own (a separate process, so its RSS is the API's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import blosc2
import caterva2 as cat2
import httpx
import numpy as np
import pytest

from functions.engine.answers import AnswerLimits
from functions.engine.content import load_object

RUN = uuid.uuid4().hex[:8]
ROOT = f"big-{RUN}"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def big(stack) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    # noisy detector frames: 16 bits of entropy per pixel, so chunks stay ~6.7 MB compressed
    frames = rng.integers(0, 60000, (10, 1830, 1830), dtype=np.uint16)
    floats = rng.random((1125, 4000))  # 36 MB of incompressible doubles, chunks of 3.6 MB
    publisher = stack.regions[0].services.publisher
    publisher.publish(ROOT, "stack.b2nd", load_object(blosc2.asarray(frames, chunks=(1, 1830, 1830))))
    publisher.publish(ROOT, "floats.b2nd", load_object(blosc2.asarray(floats, chunks=(112, 4000))))
    return {"stack.b2nd": frames, "floats.b2nd": floats}


def test_the_first_region_is_limited_as_lambda_is(stack):
    limits = stack.regions[0].services.read.limits
    assert limits == AnswerLimits(4_500_000, 200_000_000)
    assert stack.regions[0].services.settings.payload_limit == 4_500_000


def test_fetch_whole_and_one_plane(stack, big):
    with cat2.Client(stack.api_url) as client:
        whole = client.fetch(f"{ROOT}/stack.b2nd")
        assert np.array_equal(whole, big["stack.b2nd"])
        plane = client.fetch(f"{ROOT}/stack.b2nd", slice_=(3,))  # 6.7 MB: compressed again, streamed
        assert np.array_equal(plane, big["stack.b2nd"][3])
        assert np.array_equal(client.fetch(f"{ROOT}/floats.b2nd"), big["floats.b2nd"])


def test_a_streamed_answer_says_its_length(stack, big):
    with httpx.stream("GET", f"{stack.api_url}/api/fetch/{ROOT}/stack.b2nd", params={"slice_": "2"}) as resp:
        assert resp.status_code == 200
        length = int(resp.headers["content-length"])
        assert length > 4_500_000
        body = resp.read()
    assert len(body) == length
    assert np.array_equal(blosc2.ndarray_from_cframe(body)[:], big["stack.b2nd"][2])


def test_download_then_open_with_blosc2(stack, big, tmp_path):
    with cat2.Client(stack.api_url) as client:
        for name, want in big.items():
            path = client.download(f"{ROOT}/{name}", tmp_path / name)
            assert np.array_equal(blosc2.open(str(path))[:], want), name


def test_get_slice_as_blosc2(stack, big):
    with cat2.Client(stack.api_url) as client:
        got = client.get_slice(f"{ROOT}/stack.b2nd", key=slice(2, 5), as_blosc2=True)
        assert isinstance(got, blosc2.NDArray)
        assert np.array_equal(got[:], big["stack.b2nd"][2:5])


def test_c2array_and_proxy(stack, big):
    for name, want in big.items():
        remote = blosc2.C2Array(f"{ROOT}/{name}", urlbase=stack.api_url)
        assert np.array_equal(remote[1:3], want[1:3]), name
        proxy = blosc2.Proxy(remote)  # reads /api/chunk: 6.7 MB chunks are streamed
        assert np.array_equal(proxy[:], want), name


def test_a_chunk_past_the_buffered_limit(stack, big):
    resp = httpx.get(f"{stack.api_url}/api/chunk/{ROOT}/stack.b2nd", params={"nchunk": 4})
    assert resp.status_code == 200 and len(resp.content) > 4_500_000
    plane = np.frombuffer(blosc2.decompress2(resp.content), dtype=np.uint16).reshape(1830, 1830)
    assert np.array_equal(plane, big["stack.b2nd"][4])
    # a server that cannot stream refuses it, pointing to what works
    read = stack.regions[0].services.read
    old, read.limits = read.limits, AnswerLimits(4_500_000, 0)
    try:
        resp = httpx.get(f"{stack.api_url}/api/chunk/{ROOT}/stack.b2nd", params={"nchunk": 4})
        assert resp.status_code == 413 and "catclient" in resp.json()["detail"]
    finally:
        read.limits = old


def test_an_upload_past_the_request_limit_gets_guidance(stack, tmp_path, user_client):
    local = tmp_path / "five.bin"
    local.write_bytes(os.urandom(5_000_000))
    client = user_client
    with pytest.raises(httpx.HTTPStatusError) as raised:
        client.get("@personal").upload(local, f"up-{RUN}/five.bin")
    assert raised.value.response.status_code == 413
    assert "upload-url" in raised.value.response.json()["detail"]


@pytest.fixture(scope="module")
def user_client(stack):
    from functions.admin import generate_password
    from functions.admin import main as admin_main

    name, password = f"stream-{RUN}", generate_password()
    argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
    assert admin_main([*argv, "users", "add", name, "--password", password]) == 0
    with cat2.Client(stack.api_url, (name, password)) as client:
        yield client


# ---------------------------------------------------------------------- server memory


def _peak_rss(pid: int) -> int:
    """VmHWM (peak resident set) of a process, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _reset_peak(pid: int) -> None:
    # "5" resets VmHWM to the current RSS (Linux >= 4.0), so the peak that follows is the download's
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux) to read peak RSS")
def test_a_150_mb_download_streams_with_bounded_server_memory(tmp_path):
    """The API in a process of its own (moto is its child), the data published by another one."""
    floats = np.random.default_rng(3).random((2500, 7500))  # 150 MB, chunks of 7.5 MB
    src, empty = tmp_path / "root", tmp_path / "empty"
    src.mkdir()
    empty.mkdir()
    blosc2.asarray(floats, chunks=(125, 7500), urlpath=str(src / "floats.b2nd"), mode="w")
    cmd = [sys.executable, "-m", "infra.local", "--port", "0", "--regions", "1", "--root-dir", str(empty)]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        info = _ready(proc)
        url = info["api_urls"]["r1"]
        publish = [sys.executable, "-m", "infra.publish", str(src), "--root", "mem", "--quiet",
                   "--bucket", info["origin_bucket"], "--topic-arn", info["topic_arn"]]  # fmt: skip
        env = {**os.environ, "AWS_ENDPOINT_URL": info["aws_endpoint_url"]}
        subprocess.run(publish, cwd=REPO, env=env, check=True, timeout=300)
        with httpx.Client(timeout=120) as http:
            _wait_for(http, f"{url}/api/info/mem/floats.b2nd")
            _reset_peak(proc.pid)
            before = _peak_rss(proc.pid)
            dest = tmp_path / "got.b2nd"
            with http.stream("GET", f"{url}/api/download/mem/floats.b2nd") as resp, dest.open("wb") as out:
                assert resp.status_code == 200
                for piece in resp.iter_bytes():
                    out.write(piece)
        grown = _peak_rss(proc.pid) - before
        assert np.array_equal(blosc2.open(str(dest))[:], floats)
        # a few chunks (4 x 7.5 MB in flight) and the frame's bookkeeping, never the 150 MB answer
        print(f"server peak RSS grew by {grown / 2**20:.0f} MiB for a {dest.stat().st_size / 1e6:.0f} MB download")
        assert grown < 96 << 20, grown
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(http: httpx.Client, url: str, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while http.get(url).status_code != 200:
        assert time.monotonic() < deadline, f"{url} never appeared"
        time.sleep(0.2)


def _ready(proc: subprocess.Popen) -> dict:
    for line in proc.stdout:
        if line.startswith("ready:"):
            return json.loads(line.split(":", 1)[1])
    raise AssertionError(f"the stack exited ({proc.wait()}) before it was ready")

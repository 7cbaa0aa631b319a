"""Peak memory of the API process under hostile requests (bombs, read amplification).

The local stack runs in a process of its own (``python -m bench.stackproc``:
the regional API, the dispatcher that runs the ingest function, moto as *its*
child).  Before each case the process's peak RSS is reset (``5`` written to
``/proc/PID/clear_refs``); after it, ``VmHWM`` minus the RSS before is what the
case cost the server.

``python -m tests.hostile_memory`` prints one line per case (status, cost in
MiB, the answer's detail); :mod:`tests.test_hostile_memory` asserts the bounds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests import hostile_frames as hf

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


@dataclass
class Outcome:
    """One hostile request: its answer and what it cost the server's memory."""

    case: str
    status: int
    detail: str
    cost_bytes: int
    seconds: float

    def line(self) -> str:
        """One line of the report."""
        return (
            f"{self.case:<34} {self.status}  +{self.cost_bytes / MiB:7.1f} MiB  {self.seconds:5.1f} s  "
            f"{self.detail[:150]}"
        )


class ServerProcess:
    """``bench.stackproc`` with one region, its pid, and a way to measure one request's peak memory."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.stackproc", "--regions", "1"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("ready: "):
            self.stop()
            raise RuntimeError(f"the stack did not start: {line!r}")
        self.info = json.loads(line[len("ready: ") :])
        self.url = self.info["api_url"]
        self.cookie = self._login()

    def _login(self) -> str:
        data = {"username": self.info["demo_user"], "password": self.info["demo_password"]}
        resp = httpx.post(f"{self.url}/auth/jwt/login", data=data, timeout=30)
        resp.raise_for_status()
        return f"c2subauth={resp.cookies['c2subauth']}"

    @property
    def pid(self) -> int:
        """The process that serves the API."""
        return self.proc.pid

    def measure(self, case: str, request) -> Outcome:
        """Run ``request(client) -> httpx.Response`` and return its answer and peak memory cost."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _status_kib(self.pid, "VmRSS") * 1024
        start = time.monotonic()
        with httpx.Client(base_url=self.url, headers={"Cookie": self.cookie}, timeout=300) as client:
            resp = request(client)
        seconds = time.monotonic() - start
        peak = _status_kib(self.pid, "VmHWM") * 1024
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "detail" in body:
            detail = str(body["detail"])
        else:
            detail = f"{len(resp.content)} bytes: {resp.text[:80]!r}" if resp.status_code < 400 else resp.text[:200]
        return Outcome(case, resp.status_code, detail, max(0, peak - before), seconds)

    def publisher(self):
        """A publisher into this stack's origin (as ``cat-publish`` would be)."""
        from functions.aws import build_publisher
        from functions.settings import Settings

        settings = Settings(
            origin_bucket=self.info["origin_bucket"],
            topic_arn=self.info["topic_arn"],
            endpoint_url=self.info["aws_endpoint_url"],
        )
        return build_publisher(settings)

    def wait_for(self, path: str, seconds: float = 20) -> None:
        """Until the API knows *path* (its change event went through the dispatcher)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/api/info/{path}", timeout=30).status_code == 200:
                return
            time.sleep(0.1)
        raise TimeoutError(path)

    def stop(self) -> None:
        """Stop the stack (and moto, its child)."""
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"cmd": "stop"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _upload(path: str, frame: bytes):
    return lambda c: c.post(f"/api/upload/{path}", files={"file": ("x.b2nd", frame)})


def publish_big(server: ServerProcess) -> None:
    """``big/ones.b2nd``: 32 data chunks of 32 MiB (1 GiB decompressed, a few hundred KB stored)."""
    from functions.engine.content import load_object

    arr = hf.repeated_chunks(32, 32 * MiB)
    server.publisher().publish("big", "ones.b2nd", load_object(arr))
    server.wait_for("big/ones.b2nd")


#: One element per chunk of big/ones.b2nd: a 256-byte answer that touches 1 GiB
STRIDE = (32 * MiB) // 8


def cases(server: ServerProcess) -> list[Outcome]:
    """Every hostile case, measured in order."""
    bomb = hf.bomb()
    one_big_chunk = hf.bomb(1, 512 * MiB)
    publish_big(server)
    lazy = {"name": "sumbig", "expression": "sum(x + x + x)", "operands": {"x": "big/ones.b2nd"}}
    elementwise = {"name": "plusbig", "expression": "x + 1", "operands": {"x": "big/ones.b2nd"}}
    runs = [
        ("upload bomb 16 x 256 MiB", _upload("@personal/bomb.b2nd", bomb)),
        ("upload one 512 MiB chunk", _upload("@personal/bigchunk.b2nd", one_big_chunk)),
        ("fetch ::4194304 (1 GiB touched)", lambda c: c.get(f"/api/fetch/big/ones.b2nd?slice_=::{STRIDE}")),
        ("fetch indices over 32 chunks", lambda c: c.get(
            "/api/fetch/big/ones.b2nd", params={"indices": json.dumps([list(range(0, 32 * STRIDE, STRIDE))])}
        )),
        ("lazy sum(x + x + x) over 1 GiB", lambda c: (
            c.post("/api/lazyexpr/", json=lazy), c.get("/api/fetch/@personal/sumbig.b2nd"))[1]),
        ("lazy x + 1 over 1 GiB, whole", lambda c: (
            c.post("/api/lazyexpr/", json=elementwise), c.get("/api/fetch/@personal/plusbig.b2nd"))[1]),
    ]
    return [server.measure(name, request) for name, request in runs]


def main() -> int:
    """Print the cost of every case (``python -m tests.hostile_memory``)."""
    server = ServerProcess()
    try:
        baseline = _status_kib(server.pid, "VmRSS") * 1024
        print(f"server pid {server.pid}, RSS {baseline / MiB:.0f} MiB before the cases")
        for outcome in cases(server):
            print(outcome.line(), flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

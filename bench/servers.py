"""The servers a benchmark run talks to: our stack and Caterva2's own ``cat2-server``.

Each runs in a process of its own (see :mod:`bench.stackproc` for why), so the
harness process holds only the clients under test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
CAT2_VENV = REPO / ".venv-cat2"
#: The Caterva2 release we compare against (issue 8); its server extras pin a
#: fastapi that conflicts with ours, hence a venv of its own.
CAT2_REQUIREMENT = "caterva2[server]==2026.9.2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


class OurStack:
    """``python -m bench.stackproc`` as a child process, with its control channel."""

    def __init__(self, *, regions: int = 2, response_limit: int = 4_500_000, unlimited: str = "r2") -> None:
        self.regions = regions
        self.response_limit = response_limit
        self.unlimited = unlimited
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._lock = threading.Lock()
        self._warned = False

    def start(self, timeout: float = 120) -> OurStack:
        cmd = [
            sys.executable,
            "-m",
            "bench.stackproc",
            "--regions",
            str(self.regions),
            "--response-limit",
            str(self.response_limit),
            "--unlimited",
            self.unlimited,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "POWERTOOLS_LOG_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"our stack exited (code {self.proc.wait()}) before it was ready")
            if line.startswith("ready: "):
                self.info = json.loads(line[len("ready: ") :])
                return self
        raise RuntimeError("our stack did not get ready in time")

    def command(self, cmd: str, **kw) -> dict:
        with self._lock:
            self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
            self.proc.stdin.flush()
            answer = json.loads(self.proc.stdout.readline())
        if not answer.get("ok"):
            raise RuntimeError(f"stack command {cmd} failed: {answer}")
        return answer

    def reset_cache(self, *labels: str) -> dict:
        """Empty the regions' cache buckets and in-process state (LRU, memos, known keys): a cold region."""
        answer = self.command("reset_cache", regions=list(labels))
        if answer.get("not_reset") and not self._warned:
            self._warned = True
            print(
                "warning: Region state that bench/stackproc.py does not reset (cold runs may be"
                f" partly warm): {answer['not_reset']}",
                file=sys.stderr,
            )
        return answer

    def url(self, label: str) -> str:
        return self.info["api_urls"][label]

    @property
    def endpoint_url(self) -> str:
        return self.info["aws_endpoint_url"]

    @property
    def pids(self) -> dict[str, int]:
        out = {"api": self.proc.pid}
        if self.info.get("moto_pid"):
            out["s3"] = int(self.info["moto_pid"])
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                self.command("stop")
            self.proc.wait(timeout=30)
        except (OSError, ValueError, RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError):
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def cat2_available() -> bool:
    return (CAT2_VENV / "bin" / "cat2-server").exists()


def install_cat2(log=print) -> bool:
    """Create ``.venv-cat2`` with Caterva2's server from PyPI (once); False if that failed."""
    if cat2_available():
        return True
    log(f"creating {CAT2_VENV.name} with {CAT2_REQUIREMENT} (once; a minute or two) ...")
    base = getattr(sys, "_base_executable", None) or sys.executable
    pip = [str(CAT2_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    try:
        subprocess.run([base, "-m", "venv", str(CAT2_VENV)], check=True)
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, CAT2_REQUIREMENT], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"  could not install {CAT2_REQUIREMENT} ({exc}); the Caterva2-server rows will be skipped")
        shutil.rmtree(CAT2_VENV, ignore_errors=True)
        return False
    return cat2_available()


def cat2_version() -> str | None:
    if not cat2_available():
        return None
    out = subprocess.run(
        [str(CAT2_VENV / "bin" / "python"), "-c", "import caterva2, blosc2; print(caterva2.__version__)"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or None


class Cat2Server:
    """Caterva2's own server on 127.0.0.1, serving *files* in its ``@public`` root.

    Configuration (read from Caterva2's package: ``caterva2.utils.get_server_conf``
    and ``services/server.py:main``): a ``caterva2-server.toml`` whose ``[server]``
    table has ``statedir``, ``listen``, ``urlbase`` and ``login``; ``@public`` is
    ``<statedir>/public`` on disk.  ``login = false`` serves anonymous reads (it
    would otherwise need ``CATERVA2_SECRET`` and a user database).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.statedir = self.workdir / "state"
        self.public = self.statedir / "public"
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def clear_public(self) -> None:
        """Empty ``@public`` (links left by an earlier run)."""
        if self.public.exists():
            shutil.rmtree(self.public)
        self.public.mkdir(parents=True)

    def add_public(self, src: Path, name: str | None = None) -> str:
        """Put *src* into ``@public`` (a hard link when possible: no copy); returns its path."""
        self.public.mkdir(parents=True, exist_ok=True)
        dest = self.public / (name or src.name)
        dest.unlink(missing_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
        return f"@public/{dest.name}"

    def start(self, timeout: float = 60) -> Cat2Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.public.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = self.workdir / "caterva2-server.toml"
        conf.write_text(
            "[server]\n"
            f'statedir = "{self.statedir}"\n'
            f'listen = "127.0.0.1:{self.port}"\n'
            f'urlbase = "{self.url}"\n'
            "login = false\n"
            'loglevel = "warning"\n'
        )
        self._log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
        cmd = [
            str(CAT2_VENV / "bin" / "cat2-server"),
            "--conf",
            str(conf),
            "--statedir",
            str(self.statedir),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        # cwd: Caterva2 also looks for caterva2-server.toml in the working directory
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=self._log, stderr=self._log)
        _wait_http(self.url + "/api/roots", self.proc, timeout, "cat2-server")
        return self

    @property
    def pids(self) -> dict[str, int]:
        return {"cat2": self.proc.pid} if self.proc else {}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

"""The documentation's commands work when followed literally against ``make run``.

Every fenced block of README.md and docs/*.md is one of:

- run: ``sh``/``bash`` (``bash -e``), ``console`` (its ``$ `` lines, each must succeed unless
  the block shows ``echo $?`` after it) and ``python`` (one interpreter per file, blocks in
  order sharing their names, as a reader pasting them into one session would);
- data: ``json``, ``text`` and the like, which are shown, not run;
- skipped, with ``<!-- doctest: skip (why) -->`` on the line before the fence.

A block with no language, or one the test does not know, fails the test: nothing is
skipped without saying so.  The blocks run against a stack started as ``make run`` starts
it (``python -m infra.local --env-file .cat-local.env``), on free ports, in a temporary
directory holding that env file and a link to ``root-example``; each block gets the env
file's variables, the venv's ``bin`` first on ``PATH`` and a temporary ``HOME``.  The docs
name make run's default URL ``http://127.0.0.1:8000``; the test puts the stack's real one
in its place, and the demo password where the docs say ``<password from make run>``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.envfile import read_env_file

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL, PYTHON = {"sh", "bash", "console"}, {"python"}
DATA = {"json", "text", "yaml", "toml"}
SKIP = re.compile(r"^\s*<!--\s*doctest:\s*skip\s*\((?P<why>[^)]+)\)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
BLOCK_TIMEOUT = 300  # seconds per block: a bound on a hang, generous for a loaded CI machine

#: Blocks each file marks as skipped: a new skip marker must be added here too, deliberately
SKIPPED = {
    "README.md": 2,  # make run / make test themselves; the AWS deploy
    "docs/ARCHITECTURE.md": 0,
    "docs/catclient.md": 1,  # make run itself
    "docs/deploy.md": 12,  # AWS account (2), SAM CLI, LocalStack (2), GC against AWS, the built artifact (2)
    "docs/conformance.md": 1,  # runs Caterva2's whole suite (CI runs it)
    "docs/hdf5.md": 1,  # the 1 GiB benchmark
    "docs/users.md": 0,
    "docs/web.md": 0,
    "docs/wire.md": 0,
}


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text and why it is skipped (if it is)."""

    doc: str
    line: int
    lang: str
    text: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    doc = path.relative_to(REPO).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, indent = i, len(fence["indent"])
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        body = textwrap.dedent(
            "\n".join(line[indent:] if line[:indent].isspace() else line for line in lines[start + 1 : i])
        )
        marker = SKIP.match(lines[start - 1]) if start else None
        out.append(Block(doc, start + 1, fence["lang"], body + "\n", marker["why"] if marker else None))
        i += 1
    return out


ALL = {path.relative_to(REPO).as_posix(): blocks_of(path) for path in DOCS}


def test_every_block_is_run_shown_or_marked_skipped():
    unknown = [
        f"{b.where} ({b.lang or 'no language'})"
        for blocks in ALL.values()
        for b in blocks
        if b.skip is None and b.lang not in SHELL | PYTHON | DATA
    ]
    assert not unknown, f"blocks neither runnable, data nor marked `<!-- doctest: skip (why) -->`: {unknown}"
    skipped = {doc: sum(b.skip is not None for b in blocks) for doc, blocks in ALL.items()}
    assert skipped == SKIPPED
    assert sum(b.skip is None and b.lang in SHELL | PYTHON for bs in ALL.values() for b in bs) >= 15


# ------------------------------------------------------------------------------- the stack


@dataclass
class Docstack:
    """The running stack and where the blocks run."""

    ready: dict
    env: dict[str, str]
    workdir: Path


@pytest.fixture(scope="module")
def docstack(tmp_path_factory):
    """``make run``'s stack (a child process, as make starts it) and a clean place to follow the docs."""
    base = tmp_path_factory.mktemp("docs")
    workdir, home = base / "work", base / "home"
    workdir.mkdir()
    home.mkdir()
    (workdir / "root-example").symlink_to(REPO / "root-example")
    env_file = workdir / ".cat-local.env"
    cmd = [sys.executable, "-m", "infra.local", "--port", "0", "--env-file", str(env_file)]
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env
    )
    try:
        ready = _wait_ready(proc)
        # What a reader's shell has after `set -a; . ./.cat-local.env; set +a`, and nothing of ours
        env = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            **read_env_file(env_file),
        }
        yield Docstack(ready, env, workdir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 90
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if line.startswith("ready: "):
            return json.loads(line[len("ready: ") :])
    raise AssertionError("the stack did not print its ready line:\n" + "".join(seen[-30:]))


def _localised(text: str, stack: Docstack) -> str:
    """The block as it applies to this stack (free ports instead of make run's defaults)."""
    urls = stack.ready["api_urls"]
    text = text.replace("http://127.0.0.1:8000", urls["r1"]).replace("http://127.0.0.1:8001", urls["r2"])
    return text.replace("<password from make run>", stack.ready["demo_password"])


# ------------------------------------------------------------------------------- running


def console_script(text: str) -> str:
    """A bash script running a ``console`` block's ``$`` commands, each required to succeed.

    A command followed by ``$ echo $?`` must instead exit with the status shown under it.
    """
    commands: list[list[str]] = []  # [command, expected output lines...]
    for line in text.splitlines():
        if line.startswith("$ "):
            commands.append([line[2:]])
        elif commands and commands[-1][0].endswith("\\") and len(commands[-1]) == 1:
            commands[-1][0] += "\n" + line
        elif commands:
            commands[-1].append(line)
    script, i = [], 0
    while i < len(commands):
        cmd, expect = commands[i][0], 0
        if i + 1 < len(commands) and commands[i + 1][0].strip() == "echo $?":
            expect = int(commands[i + 1][1])
            i += 1
        script.append(cmd)
        quoted = cmd.splitlines()[0].replace("'", "'\\''")
        script.append(
            f"rc=$?; if [ $rc -ne {expect} ]; then echo 'doctest: `{quoted}` exited '$rc', not {expect}' >&2; exit 1; fi"
        )
        i += 1
    return "\n".join(script) + "\n"


def run_shell(block: Block, stack: Docstack) -> None:
    text = _localised(block.text, stack)
    if block.lang == "console":
        argv, script = ["bash"], console_script(text)
    else:
        argv, script = ["bash", "-e"], text
    proc = subprocess.run(
        argv,
        input=script,
        cwd=stack.workdir,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )
    assert proc.returncode == 0, (
        f"{block.where} failed ({proc.returncode}):\n{script}\n{proc.stdout}\n{proc.stderr}"
    )


#: Runs in the docs' interpreter: one JSON line in (a block), one JSON line out (its fate)
DRIVER = r"""
import json, sys, traceback
names = {"__name__": "__main__"}
for line in sys.stdin:
    block = json.loads(line)
    try:
        exec(compile(block["text"], block["where"], "exec"), names)
        answer = {"ok": True}
    except BaseException:
        answer = {"ok": False, "error": traceback.format_exc()}
    print("\0" + json.dumps(answer), flush=True)
"""


class PythonSession:
    """One interpreter (the venv's) in which a file's python blocks run in order."""

    def __init__(self, stack: Docstack):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER],
            cwd=stack.workdir,
            env=stack.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, block: Block, text: str) -> None:
        self.proc.stdin.write(json.dumps({"where": block.where, "text": text}) + "\n")
        self.proc.stdin.flush()
        output = []
        deadline = time.monotonic() + BLOCK_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("\0"):
                answer = json.loads(line[1:])
                assert answer["ok"], f"{block.where} failed:\n{text}\n{''.join(output)}\n{answer['error']}"
                return
            output.append(line)
        raise AssertionError(f"{block.where}: no answer from the interpreter:\n{''.join(output)}")

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# README first: it is the tour the others build on. Files with data and skips only are counted above
RUN_ORDER = [doc for doc in sorted(ALL) if any(b.skip is None and b.lang in SHELL | PYTHON for b in ALL[doc])]


@pytest.mark.parametrize("doc", RUN_ORDER)
def test_doc_blocks_run_against_make_run(doc, docstack):
    runnable = [b for b in ALL[doc] if b.skip is None and b.lang in SHELL | PYTHON]
    session = None
    try:
        for block in runnable:
            if block.lang in PYTHON:
                session = session or PythonSession(docstack)
                session.run(block, _localised(block.text, docstack))
            else:
                run_shell(block, docstack)
    finally:
        if session is not None:
            session.close()

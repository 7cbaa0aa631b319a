"""``make conformance``: Caterva2's own test suite, run against this project's local stack.

Each module of ``caterva2/tests`` (the pinned ``caterva2`` from PyPI) runs in its own
pytest process with :mod:`tests.conformance.plugin`, which starts our local stack in
place of the reference server.  Both modes run: login (``CATERVA2_SECRET`` set, the
test user logs in through our Cognito pool) and no-login.  A test that kills its
process (a client overrunning a buffer) is recorded as crashed and the module goes
on without it.  Every outcome is compared with ``tests/conformance/expected_failures.txt``:
a failure not listed there fails the run; a listed test that passes is reported so
the list can shrink.

Examples
--------
::

    make conformance                                   # every module, both modes
    python -m infra.conformance --modules test_api --modes login
    python -m infra.conformance --json results.json    # the outcomes, per test
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPECTED = REPO / "tests" / "conformance" / "expected_failures.txt"
INI = REPO / "tests" / "conformance" / "pytest.ini"
MODES = ("login", "nologin")
#: What a failure may be; "crashed" is a test that killed its process.
FAILING = ("failed", "error", "crashed")


@dataclass(frozen=True)
class Expectation:
    """One line of the expected-failure list: which mode, which tests (a glob), why."""

    mode: str
    pattern: str
    reason: str

    def matches(self, mode: str, test: str) -> bool:
        """Whether this line covers *test* (``module.py::name[params]``) in *mode*.

        ``*`` is the only wildcard: test ids are full of ``[``, ``]`` and ``?``.
        """
        if self.mode not in ("*", mode):
            return False
        return re.fullmatch(re.escape(self.pattern).replace(r"\*", ".*"), test) is not None


def read_expected(path: Path = EXPECTED) -> list[Expectation]:
    """Parse ``MODE PATTERN  # reason`` lines (``*`` for both modes); a reason is required."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # The reason starts at the last " #": test ids may hold "#" and spaces
        spec, _, reason = line.rpartition(" #")
        mode, _, pattern = spec.strip().partition(" ")
        if mode not in (*MODES, "*") or not pattern.strip() or not reason.strip():
            raise SystemExit(f"{path}:{number}: expected 'MODE TEST  # reason', got {line!r}")
        out.append(Expectation(mode, pattern.strip(), reason.strip()))
    return out


@dataclass
class ModuleRun:
    """The outcomes of one module in one mode."""

    mode: str
    module: str
    outcomes: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, *kinds: str) -> int:
        """How many tests ended as one of *kinds*."""
        return sum(outcome in kinds for outcome in self.outcomes.values())


def tests_dir() -> Path:
    """Where the installed ``caterva2`` keeps its test suite."""
    import caterva2.tests

    return Path(caterva2.tests.__file__).parent


def _test_name(nodeid: str) -> str:
    # With the suite's directory as rootdir, node ids are already `test_api.py::name[...]`
    # (parameters may hold slashes: nothing is cut)
    return nodeid


def _read_log(path: Path, run: ModuleRun) -> str | None:
    """Fold the plugin's JSON lines into *run*; returns the test that started but never ended."""
    if not path.exists():
        return None
    started = None
    for line in path.read_text().splitlines():
        record = json.loads(line)
        name = _test_name(record["nodeid"])
        if record["event"] == "start":
            started = name
        else:
            run.outcomes[name] = record["outcome"]
            run.details[name] = record.get("detail", "")
            started = None if started == name else started
    return started


def _environment(mode: str, log: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CONFORMANCE_LOG": str(log)}
    env.pop("CATERVA2_SECRET", None)
    if mode == "login":
        # What Caterva2's fixtures read to choose login mode; the value itself is unused here
        env["CATERVA2_SECRET"] = "conformance-secret"
    return env


def _command(suite: Path, module: str, timeout: int, done: dict[str, str]) -> list[str]:
    # Past a crash, the tests that already ended are not run again
    skip = [f"--deselect={name}" for name in done]
    return [
        sys.executable, "-m", "pytest", "-p", "tests.conformance.plugin", str(suite / f"{module}.py"),
        "-c", str(INI), "--rootdir", str(suite), "-q", "-p", "no:cacheprovider",
        f"--timeout={timeout}", *skip,
    ]  # fmt: skip


def _ended(run: ModuleRun, proc: subprocess.CompletedProcess, crashed: str | None) -> bool:
    """Whether the module is done after *proc*; records a crash or a collection error."""
    if os.environ.get("CONFORMANCE_DEBUG"):
        print(f"  rc={proc.returncode} crashed={crashed} ended={len(run.outcomes)}\n{proc.stdout[-1500:]}")
    if proc.returncode < 0 and crashed is not None:
        run.outcomes[crashed] = "crashed"
        run.details[crashed] = f"the test process died (signal {-proc.returncode})"
        return False
    if proc.returncode not in (0, 1, 5) and not run.outcomes:
        name = f"{run.module}.py::<collection>"
        run.outcomes[name], run.details[name] = "error", (proc.stdout + proc.stderr).strip()[-300:]
    return True


def run_module(module: str, mode: str, *, timeout: int, budget: float) -> ModuleRun:
    """Run one module of the suite in *mode*, restarting past any test that crashes the process."""
    run = ModuleRun(mode, module)
    suite = tests_dir()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"cat-conf-{module}-") as work:
        log = Path(work) / "outcomes.jsonl"
        env = _environment(mode, log)
        while True:
            left = max(budget - (time.monotonic() - start), 30)
            try:
                proc = subprocess.run(
                    _command(suite, module, timeout, run.outcomes),
                    cwd=work, env=env, capture_output=True, text=True, timeout=left,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                crashed = _read_log(log, run)
                if crashed:
                    run.outcomes[crashed] = "crashed"
                    run.details[crashed] = "the module's time budget ran out"
                break
            if _ended(run, proc, _read_log(log, run)):
                break
    run.seconds = time.monotonic() - start
    return run


def judge(runs: list[ModuleRun], expected: list[Expectation]) -> tuple[list[str], list[str]]:
    """(unexpected failures, listed tests that passed), each as ``mode module::test``."""
    unexpected, fixed = [], []
    for run in runs:
        for test, outcome in sorted(run.outcomes.items()):
            listed = any(e.matches(run.mode, test) for e in expected)
            if outcome in FAILING and not listed:
                unexpected.append(f"{run.mode} {test}: {outcome} {run.details.get(test, '')}".rstrip())
            elif outcome == "passed" and listed:
                fixed.append(f"{run.mode} {test}")
    return unexpected, fixed


def _table(runs: list[ModuleRun], expected: list[Expectation]) -> str:
    head = ("mode", "module", "passed", "failed", "listed", "skipped", "secs")
    rows = ["{:<8} {:<28} {:>6} {:>6} {:>6} {:>7} {:>6}".format(*head)]
    for run in runs:
        failing = [t for t, o in run.outcomes.items() if o in FAILING]
        listed = sum(any(e.matches(run.mode, t) for e in expected) for t in failing)
        rows.append(
            f"{run.mode:<8} {run.module:<28} {run.count('passed', 'xpassed'):>6} {len(failing):>6}"
            f" {listed:>6} {run.count('skipped', 'xfailed'):>7} {run.seconds:>6.0f}"
        )
    return "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m infra.conformance",
        description=__doc__.split("Examples", 1)[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--modules", default="", help="comma-separated modules (default: every test_*.py)")
    p.add_argument("--modes", default=",".join(MODES), help="login, nologin or both (default)")
    p.add_argument("--timeout", type=int, default=60, help="seconds one test may take (default 60)")
    p.add_argument("--budget", type=float, default=600, help="seconds one module may take (default 600)")
    p.add_argument("--json", type=Path, help="write every outcome to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the suite; exit 0 when every failure is listed, 1 otherwise."""
    args = _parser().parse_args(argv)
    expected = read_expected()
    modules = [m.strip() for m in args.modules.split(",") if m.strip()] or sorted(
        p.stem for p in tests_dir().glob("test_*.py")
    )
    runs = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        for module in modules:
            print(f"conformance: {mode} {module} ...", flush=True)
            runs.append(run_module(module, mode, timeout=args.timeout, budget=args.budget))
    unexpected, fixed = judge(runs, expected)
    print(_table(runs, expected))
    if args.json:
        args.json.write_text(json.dumps([run.__dict__ for run in runs], indent=1))
    for line in fixed:
        print(f"now passes (remove it from {EXPECTED.relative_to(REPO)}): {line}")
    for line in unexpected:
        print(f"UNEXPECTED: {line}")
    total = sum(len(run.outcomes) for run in runs)
    if total == 0:
        print("conformance: no test ran", file=sys.stderr)
        return 1
    print(f"conformance: {len(unexpected)} unexpected failure(s) of {total} test run(s)")
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())

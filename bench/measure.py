"""Timing, CPU accounting and summary statistics."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process (all its threads) has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def system_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (all cores, all processes) so far."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


class CpuMeter:
    """CPU seconds each named process used between :meth:`start` and :meth:`stop`.

    On a 2-core machine where client, API, S3 stand-in and the peer server all
    compete, wall time alone hides *who* spent it; this says.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float | None] = {}

    def start(self) -> None:
        self._start = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self._system = system_busy_seconds()

    def stop(self) -> dict[str, float]:
        """CPU seconds per named process, plus ``other``: what the rest of the machine used.

        A large ``other`` means something outside the benchmark competed for the cores.
        """
        out = {}
        for k, p in self.pids.items():
            now, before = cpu_seconds(p), self._start.get(k)
            if now is not None and before is not None:
                out[k] = round(now - before, 3)
        system = system_busy_seconds()
        if system is not None and self._system is not None:
            out["other"] = round(max(0.0, system - self._system - sum(out.values())), 3)
        return out


@dataclass
class Timing:
    """Wall times of the repetitions of one measurement, plus what each moved."""

    seconds: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def repeat(
    fn: Callable[[], object],
    reps: int,
    *,
    warmup: int = 1,
    before: Callable[[], object] | None = None,
    pids: dict[str, int] | None = None,
) -> Timing:
    """Run *fn* ``warmup`` times untimed, then *reps* times timed (``before`` runs untimed each time).

    CPU seconds per process are averaged over the timed repetitions.
    """
    for _ in range(warmup):
        if before:
            before()
        fn()
    timing = Timing()
    meter = CpuMeter(pids or {})
    totals: dict[str, float] = {}
    for _ in range(reps):
        if before:
            before()
        meter.start()
        t0 = time.perf_counter()
        fn()
        timing.seconds.append(time.perf_counter() - t0)
        for k, v in meter.stop().items():
            totals[k] = totals.get(k, 0.0) + v
    timing.cpu = {k: round(v / reps, 3) for k, v in totals.items()}
    return timing


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def repeat_interleaved(
    fns: dict[str, Callable[[], object]],
    reps: int,
    *,
    warmup: int = 1,
    before: dict[str, Callable[[], object]] | None = None,
    pids: dict[str, int] | None = None,
) -> dict[str, Timing]:
    """Like :func:`repeat` for several contenders, taking turns: rep 1 of each, rep 2 of each, ...

    The starting contender rotates each round.  A slow spell of the machine (the
    host's other tenants, a GC in moto) then lands on every contender alike instead
    of on whichever happened to be running, so the *ratios* stay fair.  ``before``
    maps a contender to what runs, untimed, before each of its calls.
    """
    names = list(fns)
    before = before or {}

    def prepare(name: str) -> None:
        if name in before:
            before[name]()

    for _ in range(warmup):
        for name in names:
            prepare(name)
            fns[name]()
    timings = {name: Timing() for name in names}
    totals: dict[str, dict[str, float]] = {name: {} for name in names}
    meter = CpuMeter(pids or {})
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            prepare(name)
            meter.start()
            t0 = time.perf_counter()
            fns[name]()
            timings[name].seconds.append(time.perf_counter() - t0)
            for k, v in meter.stop().items():
                totals[name][k] = totals[name].get(k, 0.0) + v
    for name in names:
        timings[name].cpu = {k: round(v / reps, 3) for k, v in totals[name].items()}
    return timings

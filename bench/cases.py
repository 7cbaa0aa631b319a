"""The measurements.  Each case takes the run's :class:`Context` and returns a JSON-able dict.

Every timed repetition is preceded by one untimed warm-up (unless the case is
about cold state, which it then recreates before each repetition); results are
checked against numpy ground truth once per row, so no figure is of a wrong answer.

The cases live in :mod:`bench.read_cases`, :mod:`bench.write_cases` and
:mod:`bench.state_cases`; what they share in :mod:`bench.common`.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.common import API_ENV, BIG, MB, ROOT, SMALL_KEY, TOMO, Context, WrongAnswer
from bench.read_cases import proxy, reads, small_slice
from bench.state_cases import _frames, cache, coldstart, idle, lazy
from bench.write_cases import propagation, publishing

__all__ = ["API_ENV", "BIG", "CASES", "MB", "ROOT", "SMALL_KEY", "TOMO", "Context", "WrongAnswer"]

CASES: dict[str, Callable[[Context], dict]] = {
    "reads": reads,
    "small": small_slice,
    "proxy": proxy,
    "publish": publishing,
    "propagation": propagation,
    "cache": cache,
    "lazy": lazy,
    "coldstart": coldstart,
    "frames": _frames,
    "idle": idle,
}

"""Login flood protection: a sliding-window count of failed logins per key.

Keys are the username *with* the client address, and the address alone, so one
attacker cannot try many passwords for one account, nor one password for many
accounts, from one place — and failures from one place never lock the account's
owner out elsewhere (a per-username key would let anyone do that).
The counts live in the process (a warm Lambda container): this is a first,
cheap line of defence that keeps floods away from the user pool; Cognito's own
lockout of repeated failures stays behind it across containers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from functions.engine.errors import TooManyAttempts


class LoginLimiter:
    """At most ``max_failures`` failed logins per key within ``window`` seconds.

    Parameters
    ----------
    max_failures : int
        Failures tolerated per key in a window (0 disables the limiter).
    window : float
        Window length, seconds.
    max_keys : int
        Keys remembered at most; the least recently failed are forgotten first,
        so a flood of distinct usernames cannot grow memory without bound.
    clock : callable
        Monotonic seconds (tests pass a fake).

    """

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def check(self, keys: Iterable[str]) -> None:
        """Raise :class:`TooManyAttempts` if any key is over its budget."""
        if self.max_failures <= 0:
            return
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self.max_failures:
                    wait = max(1, math.ceil(self.window - (now - times[0])))
                    raise TooManyAttempts(
                        f"too many failed logins for this user or from this address; retry in {wait} s",
                        wait,
                    )

    def failed(self, keys: Iterable[str]) -> None:
        """Record one failed login against each key."""
        if self.max_failures <= 0:
            return
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now) or deque(maxlen=self.max_failures)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """Forget a key's failures (the account's owner got in); address keys are kept."""
        with self._lock:
            self._failures.pop(key, None)

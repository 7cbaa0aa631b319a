"""Watching a child process the local stack cannot serve without (moto's server)."""

from __future__ import annotations

import logging
import subprocess
import threading

log = logging.getLogger("cat-local")


def watch(proc: subprocess.Popen, name: str, stop: threading.Event, interval: float = 0.5) -> threading.Event:
    """Notice when *proc* exits before *stop* is set; returns an event set when it does.

    The watcher polls the child, which also reaps it: a child that dies is never
    left behind as a zombie while the stack winds down.  An exit after *stop*
    is set is the stack's own doing and is not reported.
    """
    died = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            code = proc.poll()
            if code is None:
                continue
            if not stop.is_set():
                log.error("%s (pid %d) exited with code %s: the local stack cannot serve without it", name,
                          proc.pid, code)
                died.set()
            return

    threading.Thread(target=run, daemon=True, name=f"watch-{name}").start()
    return died

"""In-process adapters: no event topic, and the compute function called in this process."""

from __future__ import annotations

import json
from collections.abc import Callable

from functions.engine.model import ChangeEvent


class NullSink:
    """Drops events (a publisher with no topic configured)."""

    def emit(self, event: ChangeEvent) -> None:  # noqa: D102 - protocol method
        return None


class LocalInvoker:
    """Calls the compute handler's logic in this process (the local stack and tests).

    Events are round-tripped through JSON so that anything that works here is
    also what a Lambda invocation would carry.  Answers are handed back as they
    are: their bulk is a result frame, whose base64 trip across a real Lambda
    boundary (:func:`functions.engine.compute.jsonable`) would only cost time here.
    """

    payload_limit = None

    def __init__(self, handler: Callable[[dict], dict]) -> None:
        self._handler = handler
        self.invocations = 0

    def invoke(self, event: dict) -> dict:  # noqa: D102 - protocol method
        self.invocations += 1
        return self._handler(json.loads(json.dumps(event)))

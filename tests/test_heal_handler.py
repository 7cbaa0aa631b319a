"""The sync function's scheduled run: every root's applied feed position compared, the roots behind healed."""

from __future__ import annotations

import time

import blosc2
import numpy as np

from functions.engine import healing
from functions.engine.content import load_object
from functions.handlers import sync as sync_handler
from tests.test_handlers import FakeContext, lambda_env  # noqa: F401 - the fixture

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_a_scheduled_run_heals_a_root_whose_event_was_lost(lambda_env, stack):  # noqa: F811
    publisher = stack.regions[0].services.publisher
    region = stack.regions[0].services.region  # the r1 cache bucket the handler's environment names
    publisher.publish("healtimer", "t.b2nd", load_object(blosc2.asarray(np.zeros(100), chunks=(50,))))
    deadline = time.monotonic() + 10
    while healing.applied_seq(region, "healtimer") != 1:
        assert time.monotonic() < deadline, "the dispatcher never delivered the first event"
        time.sleep(0.05)
    events, publisher.events = publisher.events, None  # the next event is lost
    try:
        publisher.publish("healtimer", "t.b2nd", load_object(blosc2.asarray(np.ones(100), chunks=(50,))))
    finally:
        publisher.events = events
    result = sync_handler.handler(SCHEDULED, FakeContext())
    assert result["healed"]["healtimer"] == 1
    assert healing.applied_seq(region, "healtimer") == 2
    assert sync_handler.handler(SCHEDULED, FakeContext())["healed"].get("healtimer") is None

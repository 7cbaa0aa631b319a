"""Hostile requests cost the API process bounded memory (issue: bombs and read amplification).

The API runs in a process of its own (:mod:`tests.hostile_memory`), whose peak
RSS is reset before each request and read after it.  Before these bounds, the
same requests were answered 200 at a cost of 0.5 to 2 GiB each.
"""

from __future__ import annotations

import pytest

from tests.hostile_memory import MiB, ServerProcess, cases

#: What one refused hostile request may cost the server (its answer is computed from headers and shapes)
BOUND = 64 * MiB


@pytest.fixture(scope="module")
def outcomes():
    server = ServerProcess()
    try:
        yield {o.case: o for o in cases(server)}
    finally:
        server.stop()


def test_every_hostile_case_is_refused_with_413_in_bounded_memory(outcomes):
    for outcome in outcomes.values():
        assert outcome.status == 413, outcome.line()
        assert outcome.cost_bytes < BOUND, outcome.line()


def test_refusals_say_the_limit_and_what_to_do(outcomes):
    assert "CAT_MAX_UPLOAD_NBYTES" in outcomes["upload bomb 16 x 256 MiB"].detail
    assert "CAT_MAX_CHUNK_NBYTES" in outcomes["upload one 512 MiB chunk"].detail
    touched = outcomes["fetch ::4194304 (1 GiB touched)"].detail
    assert "decompress" in touched and "/api/chunk" in touched and "catclient" in touched
    assert "CAT_MAX_WORK" in outcomes["lazy sum(x + x + x) over 1 GiB"].detail
    assert "CAT_MAX_READ_NBYTES" in outcomes["lazy x + 1 over 1 GiB, whole"].detail

"""Schemathesis against the live API over real HTTP: no 5xx, and every answer as ``/openapi.json`` says.

Bounded: a fixed seed and a few hundred generated requests (valid and invalid
ones) per caller, anonymous and logged in.  The API runs on a local stack of
its own, so generated removals and uploads can only touch that stack's data.
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.local import LocalStack, StackConfig
from tests.test_writes import _new_writer

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 250  # per caller
READS = [
    ("/api/fetch/{path}", "GET"),
    ("/api/fetch/{path}", "POST"),
    ("/api/chunk/{path}", "GET"),
    ("/api/plan/{path}", "GET"),
    ("/api/info/{path}", "GET"),
    ("/api/download/{path}", "GET"),
]
DATASETS = ["example/ds-1d.b2nd", "example/ds-1d-fields.b2nd", "example/dir2/ds-4d.b2nd", "example/ds-hello.b2frame"]


@pytest.fixture(scope="module")
def fuzzed():
    st_ = LocalStack(StackConfig(port=0, regions=1, moto_in_thread=False, prefix="cat-fuzz")).start()
    try:
        yield st_
    finally:
        st_.stop()


@pytest.fixture(scope="module")
def schema(fuzzed):
    return schemathesis.openapi.from_url(f"{fuzzed.api_url}/openapi.json")


def _run(schema, base_url: str, headers: dict) -> int:
    """Generate and send EXAMPLES requests; returns how many were sent (a failing check raises)."""
    # Random paths rarely name data: the read operations also get real datasets, with
    # generated (valid and invalid) slices, filters, indices and chunk numbers
    on_data = [
        schema[path][method].as_strategy(mode, path_parameters={"path": dataset})
        for path, method in READS
        for dataset in DATASETS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE), *on_data
    )
    sent = []

    @seed(20261202)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def check(case):
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)
        sent.append((case.operation.label, response.status_code))

    check()
    print(sorted(Counter(sent).items()))  # what was sent and answered (pytest -s shows it)
    return len(sent)


def test_anonymous_requests_answer_as_documented(schema, fuzzed):
    assert _run(schema, fuzzed.api_url, {}) >= EXAMPLES


def test_logged_in_requests_answer_as_documented(schema, fuzzed):
    writer = _new_writer(fuzzed, "fuzz")
    assert httpx.get(f"{fuzzed.api_url}/auth/me", headers=writer.headers).status_code == 200
    assert _run(schema, fuzzed.api_url, writer.headers) >= EXAMPLES


def test_the_schema_documents_the_errors_sent_and_no_422(fuzzed):
    doc = httpx.get(f"{fuzzed.api_url}/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            answers = op["responses"]
            # Only POST /api/fetch's body answers FastAPI's 422 (as Caterva2's server does)
            assert "422" not in answers or (method, path) == ("post", "/api/fetch/{path}"), (method, path)
            assert {"400", "401", "403", "404", "413", "503"} <= set(answers), (method, path)
            assert answers["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "416" in doc["paths"]["/api/fetch/{path}"]["get"]["responses"]
    strict = doc["paths"]["/api/fetch/{path}"]["post"]["responses"]["422"]
    assert strict["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BodyErrors"}
    assert "429" in doc["paths"]["/auth/jwt/login"]["post"]["responses"]
    # What a validation error really answers: 400 with a detail, as documented
    r = httpx.get(f"{fuzzed.api_url}/api/chunk/example/ds-1d.b2nd", params={"nchunk": "x"})
    assert r.status_code == 400 and "nchunk" in r.json()["detail"]

"""Shared fixtures: moto in-process, moto's threaded server, and the whole local stack."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
#: A bucket the test stack's /api/load_from_url may read (tests/test_load_from_url.py)
LOAD_BUCKET = "cat-test-loads"
# The stacks of the tests may load from loopback HTTP servers the tests start (any port), and
# from LOAD_BUCKET; a deployed server allows only public https unless configured
os.environ.setdefault("CAT_LOAD_URL_ALLOW", f"http://127.0.0.1:,s3://{LOAD_BUCKET}/")

# moto must apply conditional PUTs atomically, as S3 does (see infra/moto_patch.py)
from infra.moto_patch import apply as _atomic_conditional_puts  # noqa: E402

_atomic_conditional_puts()


@pytest.fixture
def aws():
    """moto in-process (unit tests): every boto3 call in the test goes to moto's mocks."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture(scope="session")
def stack():
    """The local stack (moto threaded server + two regional APIs on free ports), shared by a session.

    Tests that change data use their own paths or roots so they do not disturb others.
    """
    from infra.local import LocalStack, StackConfig

    # moto as a child process: in a thread it would share moto's in-process backends with the
    # mock_aws() unit tests, whose resets would wipe the stack's buckets and user pool
    st = LocalStack(StackConfig(port=0, moto_in_thread=False, head_ttl=1.0)).start()
    st.client("s3").create_bucket(Bucket=LOAD_BUCKET)
    try:
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="session")
def api_url(stack) -> str:
    """URL of the first region's API."""
    return stack.api_url

"""A pytest plugin that points Caterva2's own test suite at this project's local stack.

Caterva2's fixtures (``caterva2/tests/services.py``) start the reference server as a
child process, fill ``@public`` by copying files into its state directory and create
the test user in its SQLite database.  This plugin swaps the class that does so for
one that starts our local stack instead (moto + one regional API + the dispatcher,
on free ports), publishes the same files into ``@public`` through the publisher (what
the reference's state directory holds is what our origin bucket holds), and creates
the test user in the stack's Cognito pool.  The test bodies run unchanged.

Use: ``pytest -p tests.conformance.plugin --pyargs caterva2.tests`` (``make conformance``
does this for both modes: ``CATERVA2_SECRET`` set means login mode, as in Caterva2).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import threading

#: The user Caterva2's fixtures log in as (``services.make_sub_user``); the password
#: is theirs too, the Cognito pool's policy is relaxed to accept it (moto enforces it).
TEST_USER = ("user@example.com", "foobar11")


class Mirror:
    """Publishes what tests copy into the reference server's ``server/public`` directory.

    Caterva2's fixtures fill ``@public`` by writing files there (non-Blosc2 files
    wrapped as ``NAME.b2`` SChunk frames, as the reference stores them).  Before
    every HTTP request of the test process the directory is looked at again and each
    new or rewritten file is published into ``@public``, and the region takes the
    new head at once (as after an API write): reads that follow see it.
    """

    def __init__(self, services, root: str = "@public") -> None:
        self.services, self.root = services, root
        self.seen: dict[pathlib.Path, tuple[int, int]] = {}
        self.lock = threading.RLock()

    def __call__(self) -> None:
        from caterva2.tests.services import TEST_STATE_DIR

        base = pathlib.Path(TEST_STATE_DIR) / "server" / "public"
        if not base.is_dir():
            return
        with self.lock:
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    self._sync(base, path)

    def _sync(self, base: pathlib.Path, path: pathlib.Path) -> None:
        import blosc2

        from functions.engine.content import load_bytes

        stat = path.stat()
        signature = (stat.st_mtime_ns, stat.st_size)
        if self.seen.get(path) == signature:
            return
        self.seen[path] = signature
        rel, data = path.relative_to(base).as_posix(), path.read_bytes()
        if rel.endswith(".b2"):
            rel, schunk = rel[:-3], blosc2.schunk_from_cframe(data)
            data = b"".join(schunk.decompress_chunk(i) for i in range(schunk.nchunks))
        try:
            result = self.services.publisher.publish(self.root, rel, load_bytes(rel, data))
        except Exception as exc:  # noqa: BLE001 - a file we cannot take is the test's to report
            print(f"conformance mirror: {rel}: {type(exc).__name__}: {exc}")
            return
        self.services.writes.settle(result)


def _mirror_before_requests(mirror: Mirror) -> None:
    """Run *mirror* before every request any ``httpx`` client of this process sends."""
    import httpx

    def wrap(send):
        def sending(self, request, *args, **kwargs):
            mirror()
            return send(self, request, *args, **kwargs)

        return sending

    httpx.Client.send = wrap(httpx.Client.send)


def _mirror_published(services) -> None:
    """Copy every frame a publish puts in the origin bucket into the reference's publish root.

    The reference publishes a filled array to the directory its test configuration
    names (``TEST_STATE_DIR/published``), and the tests look for it there; ours
    PUTs it to ``p/<storage root>/<path>`` of the origin bucket.  After each
    publish, the object is read back from the bucket and written into that
    directory under the same key (to a temporary name, then renamed: a test
    polling for it sees a whole frame or nothing).
    """
    import shutil

    from caterva2.tests.services import TEST_STATE_DIR

    from functions.engine.chunkwrites import PUBLISHED_PREFIX

    base = pathlib.Path(TEST_STATE_DIR) / "published"
    shutil.rmtree(base, ignore_errors=True)  # as the reference's fixtures start from a fresh state
    writes = services.chunk_writes
    publish = writes.publish

    def publishing(loc):
        url = publish(loc)
        key = writes.published_key(loc)
        target = base / key.removeprefix(PUBLISHED_PREFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{threading.get_ident()}.tmp")
        staging.write_bytes(writes.publisher.store.get(key).data)
        os.replace(staging, target)
        return url

    writes.publish = publishing


def _add_user(stack):
    """``srv_utils.add_user`` for the tests that make a second user: into the stack's user pool."""

    def add_user(username, password, is_superuser, state_dir=None):
        from caterva2.client import BasicAuth

        from functions.admin import admin_authenticator

        admin = admin_authenticator(stack.resources["user_pool_id"], stack.endpoint_url)
        admin.add_user(username, password, superuser=is_superuser)
        return BasicAuth(username, password)

    return add_user


def _free_or_any(port: int) -> int:
    """*port* if nothing listens on it on 127.0.0.1, else 0 (any free port)."""
    import socket

    with socket.socket() as probe:
        # As the stack's own listener does: connections of the previous module's stack in
        # TIME_WAIT must not make the port look taken
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


class StackServices:
    """Stands in for ``caterva2.tests.services.ManagedServices``: same constructor and methods."""

    def __init__(self, state_dir, reuse_state=True, roots=None, configuration=None):
        # Tests that read the reference server's files get a real, empty directory
        self.state_dir = pathlib.Path(tempfile.mkdtemp(prefix="cat-conformance-"))
        self.roots = list(roots or [])
        self.stack = None

    def start_all(self) -> None:
        """Start the local stack and publish every root's files into it."""
        from infra.local import LocalStack, StackConfig

        # caterva2-server-login.toml's maxusers, which test_adduser_maxexceeded counts on
        os.environ["CAT_MAX_USERS"] = "5"

        # Port 8000 when it is free: the suite's CLI tests read the server's URL from its
        # caterva2.toml ("http://localhost:8000"), as the reference's fixtures bind it
        config = StackConfig(port=_free_or_any(8000), regions=1, root_dir=None, head_ttl=1.0, response_limit=0)
        self.stack = LocalStack(config).start(publish=False)
        publisher = self.stack.regions[0].services.publisher
        for root in self.roots:
            # as the reference serves a root directory: an .h5 is a file (not also unfolded)
            publisher.publish_directory(root.name, pathlib.Path(root.source), unfold_hdf5=False)
        _mirror_before_requests(Mirror(self.stack.regions[0].services))
        _mirror_published(self.stack.regions[0].services)

    def stop_all(self) -> None:
        """Stop the stack (APIs, dispatcher, moto)."""
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    def wait_for_all(self) -> None:
        """Nothing to wait for: :meth:`stop_all` returns once everything stopped."""

    def get_urlbase(self) -> str:
        """The regional API's URL, spelt with ``localhost`` as the reference's fixtures spell it."""
        return self.stack.api_url.replace("127.0.0.1", "localhost")


def make_sub_user(services: StackServices):
    """The login-mode test user, created in the stack's user pool; None without a login."""
    if not os.environ.get("CATERVA2_SECRET"):
        return None
    from caterva2.client import BasicAuth

    from functions.admin import admin_authenticator

    stack = services.stack
    pool = stack.resources["user_pool_id"]
    stack.client("cognito-idp").update_user_pool(
        UserPoolId=pool,
        Policies={"PasswordPolicy": {"MinimumLength": 8, "RequireUppercase": False,
                                     "RequireLowercase": False, "RequireNumbers": False,
                                     "RequireSymbols": False}},
    )
    admin = admin_authenticator(pool, stack.endpoint_url)
    # The suite counts the pool's users (maxusers): its user is the only one, a superuser as there
    admin.remove_user(stack.config.demo_user)
    admin.add_user(*TEST_USER, superuser=True)
    # A test that adds a user of its own (test_chunk_writes' second publisher) adds it here
    import caterva2.services.srv_utils as srv_utils

    srv_utils.add_user = _add_user(stack)
    return BasicAuth(*TEST_USER)


def pytest_configure(config) -> None:
    """Swap Caterva2's service fixtures' helpers for ours before any fixture runs."""
    import caterva2.tests.services as services

    services.ManagedServices = StackServices
    services.make_sub_user = make_sub_user


# ------------------------------------------------------------------ results for the runner


def _log(record: dict) -> None:
    """Append *record* to ``CONFORMANCE_LOG`` (one JSON line), flushed at once.

    Line by line on purpose: a test that crashes the process (a client overrunning a
    buffer) still leaves every earlier outcome, and its own start, on disk.
    """
    path = os.environ.get("CONFORMANCE_LOG")
    if not path:
        return
    import json

    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def pytest_runtest_logstart(nodeid, location) -> None:
    """Record that a test started (the runner's crash detector)."""
    _log({"nodeid": nodeid, "event": "start"})


def pytest_runtest_logreport(report) -> None:
    """Record each test's outcome once: its setup failure or skip, else its call."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        detail = ""
        if report.failed:
            detail = str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else ""
        _log({"nodeid": report.nodeid, "event": "outcome", "outcome": outcome, "detail": detail})

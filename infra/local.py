"""The local stack: moto (S3/SNS/SQS) + one API per region + the event dispatcher.

``python -m infra.local`` (what ``make run`` runs) starts, on 127.0.0.1 only:

1. moto's server as a child process (or a thread, for tests), unless ``--aws-endpoint URL``
   or ``--localstack`` names an emulator already running (:mod:`infra.endpoint`);
2. the resources ``template.yaml`` defines (origin, ingest and per-region cache
   buckets, the change topic, one SNS→SQS queue per region standing in for the
   SNS→sync-function subscription, and the ingest bucket's S3→SQS notification),
   and the Cognito user pool with a ``demo`` user whose fresh password it prints;
3. a publish of ``root-example`` as the root ``example``;
4. the API of each region under uvicorn (``PORT``, ``PORT+1``, ...);
5. a dispatcher that drains the queues into the same handler code Lambda runs.

When it can serve, it prints the demo credentials and one line ``ready: {json}``.
Ctrl-C or SIGTERM stops everything it started.  All data lives in moto's memory and
is gone on exit (over an existing endpoint, it stays there).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx

from functions.aws import build_services
from functions.services import Services
from functions.settings import Settings
from infra.dispatch import start_dispatcher
from infra.envfile import DUMMY_CREDENTIALS

log = logging.getLogger("cat-local")

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "template.yaml"
#: Where ``--tomo`` builds the published root (git-ignored: ``root-example/`` stays as committed)
TOMO_ROOT = REPO / ".cache" / "root-tomo"
_FAKE_CREDENTIALS = {**DUMMY_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1"}


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for child processes that cannot take a socket)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _listen(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets
    # whose protocol says TCP, and with Nagle on, each answer waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@dataclass
class StackConfig:
    """What to start.  ``port=0`` picks free ports (tests)."""

    port: int = 8000
    regions: int = 2
    root_dir: Path | None = REPO / "root-example"
    root_name: str = "example"
    response_limit: int = 4_500_000
    #: Answers past response_limit are streamed up to this (Lambda response streaming: 200 MB)
    stream_limit: int = 200_000_000
    moto_in_thread: bool = False
    prefix: str = "cat-local"
    host: str = "127.0.0.1"
    head_ttl: float = 2.0
    poll_interval: float = 0.05
    demo_user: str = "demo"
    #: Where buckets are saved on stop and restored from on start (None: memory only)
    state_dir: Path | None = None
    #: An emulator already running (LocalStack) to run over; None: start moto
    aws_endpoint: str | None = None


@dataclass
class RegionRuntime:
    """One region's API: its services, uvicorn server and URL."""

    label: str
    services: Services
    url: str = ""
    server: object = None
    thread: threading.Thread | None = None
    queue_url: str = ""


@dataclass
class LocalStack:
    """Start/stop the whole local deployment (used by ``make run`` and the tests)."""

    config: StackConfig = field(default_factory=StackConfig)
    endpoint_url: str = ""
    regions: list[RegionRuntime] = field(default_factory=list)
    resources: dict = field(default_factory=dict)
    _moto: object = None
    _stop: threading.Event = field(default_factory=threading.Event)
    #: Set when moto's process exits while the stack runs (infra/child.py)
    moto_died: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    # ------------------------------------------------------------------ moto

    def _start_moto(self) -> None:
        for k, v in _FAKE_CREDENTIALS.items():
            os.environ.setdefault(k, v)
        if self.config.aws_endpoint:  # someone else's emulator: use it, start nothing
            from infra.endpoint import wait_until_up

            wait_until_up(self.config.aws_endpoint)
            self.endpoint_url = self.config.aws_endpoint
            return
        port = free_port(self.config.host)
        if self.config.moto_in_thread:
            from moto.server import ThreadedMotoServer

            from infra.moto_patch import apply

            apply()

            # moto's server logs every request through werkzeug at INFO: thousands of lines per test
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            self._moto = ThreadedMotoServer(ip_address=self.config.host, port=port, verbose=False)
            self._moto.start()
        else:
            # moto's server, with conditional PUTs made atomic as S3's are (infra/moto_patch.py)
            cmd = [sys.executable, "-m", "infra.moto_patch", "-H", self.config.host, "-p", str(port)]
            self._moto = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.endpoint_url = f"http://{self.config.host}:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.endpoint_url + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"moto did not start on {self.endpoint_url}")
        if isinstance(self._moto, subprocess.Popen):
            from infra.child import watch

            self.moto_died = watch(self._moto, "moto", self._stop)

    def _stop_moto(self) -> None:
        if self._moto is None:
            return
        if isinstance(self._moto, subprocess.Popen):
            self._moto.terminate()
            try:
                self._moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._moto.kill()
        else:
            self._moto.stop()
        self._moto = None

    def client(self, service: str):
        """A boto3 client for moto."""
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name="us-east-1")

    # ------------------------------------------------------------------ resources

    def _create_resources(self) -> None:
        from infra.template import create_local_resources, local_plan

        labels = tuple(f"r{i + 1}" for i in range(self.config.regions))
        plan = local_plan(TEMPLATE, prefix=self.config.prefix, regions=labels)
        created = create_local_resources(
            plan, s3=self.client("s3"), sns=self.client("sns"), sqs=self.client("sqs")
        )
        self.resources = {"plan": plan, **created}

    def _create_user_pool(self) -> None:
        """The user pool (template.yaml's UserPool/UserPoolClient) and a demo user with a fresh password."""
        from botocore.exceptions import BotoCoreError, ClientError

        from functions.admin import admin_authenticator, generate_password

        idp = self.client("cognito-idp")
        plan = self.resources["plan"]  # the pool and client as template.yaml defines them
        try:
            pool = idp.create_user_pool(PoolName=f"{self.config.prefix}-users", **plan.user_pool)
        except (BotoCoreError, ClientError) as exc:
            if not self.config.aws_endpoint:
                raise
            # LocalStack's free edition has no Cognito: serve anonymously rather than not at all
            log.warning("no user pool at %s (%s): logins are off", self.endpoint_url, exc)
            self.resources.update(user_pool_id="", user_pool_client_id="", demo_user="", demo_password="")
            return
        pool_id = pool["UserPool"]["Id"]
        client_id = idp.create_user_pool_client(
            UserPoolId=pool_id, ClientName=f"{self.config.prefix}-api", **plan.user_pool_client
        )["UserPoolClient"]["ClientId"]
        password = generate_password()
        admin_authenticator(pool_id, self.endpoint_url).add_user(self.config.demo_user, password)
        self.resources.update(
            user_pool_id=pool_id,
            user_pool_client_id=client_id,
            demo_user=self.config.demo_user,
            demo_password=password,
        )

    # ------------------------------------------------------------------ regions

    def _settings(self, label: str) -> Settings:
        plan = self.resources["plan"]
        return Settings(
            origin_bucket=plan.origin_bucket,
            cache_bucket=plan.cache_buckets[label],
            ingest_bucket=plan.ingest_bucket,
            topic_arn=self.resources["topic_arn"],
            region_label=label,
            response_limit=self.config.response_limit,
            stream_limit=self.config.stream_limit,
            head_ttl=self.config.head_ttl,
            endpoint_url=self.endpoint_url,
            user_pool_id=self.resources["user_pool_id"],
            user_pool_client_id=self.resources["user_pool_client_id"],
        )

    def _start_api(self, runtime: RegionRuntime, port: int) -> None:
        import uvicorn

        from functions.api.app import create_app

        sock = _listen(self.config.host, port)
        actual = sock.getsockname()[1]
        # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any loopback
        # client as the caller's address (the API decides that: CAT_TRUST_FORWARDED_FOR)
        config = uvicorn.Config(
            create_app(runtime.services), log_level="warning", lifespan="off", proxy_headers=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"api-{runtime.label}"
        )
        thread.start()
        runtime.server, runtime.thread = server, thread
        runtime.url = f"http://{self.config.host}:{actual}"
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    # ------------------------------------------------------------------ dispatcher

    def _routes(self) -> list[tuple[str, object]]:
        """(queue URL, handler call) per queue: each region's sync function, and ingest."""
        from functions.adapters.s3 import S3Store
        from functions.handlers import ingest as ingest_handler
        from functions.handlers import sync as sync_handler

        origin_services = self.regions[0].services
        drop = S3Store(origin_services.clients["s3"], self.resources["plan"].ingest_bucket)
        routes = [
            (rt.queue_url, lambda ev, rt=rt: sync_handler.process(rt.services.region, ev))
            for rt in self.regions
        ]
        ingest = self.resources["ingest_queue_url"]
        routes.append((ingest, lambda ev: ingest_handler.process(origin_services.publisher, drop, ev)))
        return routes

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, publish: bool = True) -> LocalStack:
        """Start everything; returns self once every API answers."""
        self._start_moto()
        self._create_resources()
        self._restore_state()
        self._create_user_pool()
        for i in range(self.config.regions):
            label = f"r{i + 1}"
            runtime = RegionRuntime(label, build_services(self._settings(label)))
            runtime.queue_url = self.resources["sync_queue_urls"][label]
            self.regions.append(runtime)
        if publish and self.config.root_dir is not None:
            self._publish_examples()
        for i, runtime in enumerate(self.regions):
            self._start_api(runtime, self.config.port + i if self.config.port else 0)
        for queue_url, deliver in self._routes():
            # a client per loop, so each has its own connection pool
            sqs = self.client("sqs")
            self._threads.append(
                start_dispatcher(sqs, queue_url, deliver, self._stop, self.config.poll_interval)
            )
        return self

    def _buckets(self) -> list[str]:
        plan = self.resources["plan"]
        return [plan.origin_bucket, plan.ingest_bucket, *plan.cache_buckets.values()]

    def _restore_state(self) -> int:
        """Put back every object saved by :meth:`_save_state`; returns how many."""
        from infra.state import restore_buckets

        return restore_buckets(self.client("s3"), self._buckets(), self.config.state_dir)

    def _save_state(self) -> None:
        """Write every object of the stack's buckets under ``state_dir/<bucket>/<key>``."""
        from infra.state import save_buckets

        if self.config.state_dir is None or self._moto is None or not self.resources:
            return
        if self.moto_died.is_set():
            log.error("moto is gone: the buckets cannot be saved to %s", self.config.state_dir)
            return
        save_buckets(self.client("s3"), self._buckets(), self.config.state_dir)

    def _publish_examples(self) -> None:
        """Publish the root, and the same files under ``@public/examples/`` (the tutorial's paths)."""
        import blosc2

        from functions.engine.content import load_object
        from infra.example_data import tomo_guess_test

        publisher = self.regions[0].services.publisher
        publisher.publish_directory(self.config.root_name, self.config.root_dir)
        publisher.publish_directory("@public", self.config.root_dir, prefix="examples/")
        stack = blosc2.asarray(tomo_guess_test(), chunks=(10, 100, 100), blocks=(2, 100, 100))
        publisher.publish("@public", "examples/tomo-guess-test.b2nd", load_object(stack))

    def stop(self) -> None:
        """Stop APIs, dispatcher and moto."""
        self._stop.set()
        for runtime in self.regions:
            if runtime.server is not None:
                runtime.server.should_exit = True
        for runtime in self.regions:
            if runtime.thread is not None:
                runtime.thread.join(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
        try:
            self._save_state()
        finally:
            self._stop_moto()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The first region's API URL."""
        return self.regions[0].url

    def ready_info(self) -> dict:
        """What the ``ready:`` line reports."""
        plan = self.resources["plan"]
        return {
            "api_url": self.api_url,
            "api_urls": {rt.label: rt.url for rt in self.regions},
            "aws_endpoint_url": self.endpoint_url,
            "origin_bucket": plan.origin_bucket,
            "ingest_bucket": plan.ingest_bucket,
            "cache_buckets": dict(plan.cache_buckets),
            "topic_arn": self.resources["topic_arn"],
            "root": self.config.root_name,
            "response_limit": self.config.response_limit,
            "stream_limit": self.config.stream_limit,
            "user_pool_id": self.resources["user_pool_id"],
            "user_pool_client_id": self.resources["user_pool_client_id"],
            "demo_user": self.resources["demo_user"],
            "demo_password": self.resources["demo_password"],
        }


def main(argv: list[str] | None = None) -> int:
    """``make run``: start the local stack and serve until interrupted (:mod:`infra.local_cli`)."""
    from infra.local_cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

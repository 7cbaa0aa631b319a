"""The bundle of domain objects a process builds once and hands to the API and handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from functions.adapters.inprocess import LocalInvoker
from functions.engine import compute, healing
from functions.engine.chunkwrites import ChunkWrites
from functions.engine.compute import Coordinator
from functions.engine.estimate import Prices
from functions.engine.lazydata import LazyDatasets
from functions.engine.limits import LoginLimiter
from functions.engine.ports import Authenticator, BlobStore, Downloader, EventSink, Invoker, Staging
from functions.engine.publish import Publisher
from functions.engine.reads import ReadService
from functions.engine.region import Region
from functions.engine.timetravel import TimeTravel
from functions.engine.urlload import UrlLoads, UrlPolicy
from functions.engine.users import UserAdmin
from functions.engine.writes import WriteService
from functions.settings import Settings


@dataclass
class Services:
    """What handlers and the API need, built once per process.

    ``auth`` is None when no user pool is configured: then nobody can log in,
    and user spaces other than ``@public`` (read-only) are unreachable.
    """

    settings: Settings
    region: Region
    publisher: Publisher
    events: EventSink | None
    read: ReadService = field(init=False)
    clients: dict = field(default_factory=dict)
    auth: Authenticator | None = None
    staging: Staging | None = None
    #: How the compute function is reached; None = in this process (the local stack)
    invoker: Invoker | None = None
    #: The ingest bucket (S3 drops to publish); None where this process has none
    drop: BlobStore | None = None
    #: Fetches URLs for /api/load_from_url; None = this server loads no URLs
    downloader: Downloader | None = None
    coordinator: Coordinator = field(init=False)
    lazy: LazyDatasets = field(init=False)
    writes: WriteService = field(init=False)
    login_limiter: LoginLimiter = field(init=False)
    #: Superusers' administration of accounts; None without a user pool
    users: UserAdmin | None = field(init=False)
    url_loads: UrlLoads | None = field(init=False)
    chunk_writes: ChunkWrites = field(init=False)
    #: Versions, the change feed and estimates
    timetravel: TimeTravel = field(init=False)

    def __post_init__(self) -> None:
        if self.invoker is None:
            # The same domain entry point the compute handler calls, with the same events
            self.invoker = LocalInvoker(lambda event: compute.handle(self.region, event))
        self.coordinator = Coordinator(
            self.region,
            self.invoker,
            fanout=self.settings.fanout,
            max_work=self.settings.max_work,
            max_nbytes=self.settings.max_read_nbytes,
        )
        self.lazy = LazyDatasets(self.region, self.publisher, self.coordinator)
        self.read = ReadService(
            self.region,
            response_limit=self.settings.response_limit,
            stream_limit=self.settings.stream_limit,
            presign_ttl=self.settings.presign_ttl,
            lazy=self.lazy,
            max_read_nbytes=self.settings.max_read_nbytes,
        )
        prices = Prices(
            self.settings.price_get,
            self.settings.price_egress_gb,
            self.settings.price_lambda_gbs,
            self.settings.lambda_memory_mb,
        )
        self.timetravel = TimeTravel(self.read, prices)
        if self.region.cache is not None:
            self.region.on_revalidate = healing.revalidation_hook(self.region)
        self.writes = WriteService(
            self.publisher,
            self.region,
            max_upload_bytes=self.settings.max_upload_bytes,
            user_quota_bytes=self.settings.user_quota_bytes,
            staging=self.staging,
            presign_ttl=self.settings.presign_ttl,
        )
        self.chunk_writes = ChunkWrites(
            self.publisher,
            self.region,
            self.writes.settle,
            user_quota_bytes=self.settings.user_quota_bytes,
            # Published frames live beside the data, under p/ (docs/wire.md, "Filling an array")
            published_base=f"s3://{self.settings.origin_bucket or 'origin'}/",
            max_publish_bytes=self.settings.max_upload_bytes,
        )
        self.login_limiter = LoginLimiter(self.settings.login_failures_per_minute, 60.0)
        self.users = UserAdmin(self.auth, self.settings.max_users) if self.auth is not None else None
        policy = UrlPolicy(self.settings.load_url_prefixes, max_bytes=self.settings.max_upload_bytes)
        self.url_loads = None if self.downloader is None else UrlLoads(self.writes, self.downloader, policy)

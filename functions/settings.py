"""Settings: every variable a server process or CLI reads, declared once.

Each field's environment name, type, default and meaning live here and nowhere
else: processes build one :class:`Settings` (Lambda at cold start, the local
stack and the CLIs at start-up) and pass it in.  ``docs/ARCHITECTURE.md``'s
environment table is generated from this class (``python -m functions.settings``)
and a test fails when the two disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "configured", "markdown_table"]


def _env(name: str, doc: str, default, *also: str):
    """A field read from ``name`` (then from ``also``), documented by ``doc``."""
    alias = AliasChoices(name, *also) if also else name
    return Field(default, validation_alias=alias, description=doc)


class Settings(BaseSettings):
    """Everything configurable about a server process and the publishing CLIs.

    Built from the environment (``Settings()``, or :meth:`from_env`); keyword
    arguments by field name override it (``Settings(origin_bucket="b")``).
    """

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    origin_bucket: str = _env(
        "CAT_ORIGIN_BUCKET", "origin bucket (chunks, manifests, heads, catalogs); servers require it", ""
    )
    cache_bucket: str = _env(
        "CAT_CACHE_BUCKET", "this region's cache bucket; empty = read the origin directly", ""
    )
    ingest_bucket: str = _env("CAT_INGEST_BUCKET", "S3 drop bucket for event-driven publishing", "")
    topic_arn: str = _env("CAT_TOPIC_ARN", "SNS topic for change events; empty = events are not emitted", "")
    region_label: str = _env(
        "CAT_REGION_LABEL",
        "a name for this API's region in headers/logs (else `AWS_REGION`)",
        "local",
        "AWS_REGION",
    )
    # Lambda buffers at most 6 MB, ~4.5 MB of binary after base64; 0 disables the limit.
    response_limit: int = _env("CAT_RESPONSE_LIMIT", "largest response body, bytes (0 = no limit)", 4_500_000)
    # Lambda response streaming returns up to 200 MB (behind a streaming integration); a
    # buffered Lambda (Mangum behind the HTTP API) cannot stream: 0 there.
    stream_limit: int = _env(
        "CAT_STREAM_LIMIT",
        "largest streamed response body, bytes (answers past CAT_RESPONSE_LIMIT; 0 = never stream)",
        0,
    )
    head_ttl: float = _env("CAT_HEAD_TTL", "seconds a cache-bucket copy of a head is trusted", 2.0)
    # Events show within this: a process re-reads its cache bucket at most every memo_ttl seconds.
    memo_ttl: float = _env("CAT_MEMO_TTL", "seconds a process trusts its own memo of a head", 0.2)
    # S3 allows up to 7 days, but a URL signed with a Lambda role's session dies with it (<= 1 h).
    presign_ttl: int = _env("CAT_PRESIGN_TTL", "lifetime of presigned URLs in read plans, seconds", 300)
    # A warm Lambda container keeps it between requests; count it in the function's memory.
    lru_bytes: int = _env("CAT_LRU_BYTES", "in-process chunk cache bound, bytes", 256 << 20)
    compute_function: str = _env(
        "CAT_COMPUTE_FUNCTION", "the compute function's name (API only; empty = in-process)", ""
    )
    fanout: int = _env("CAT_FANOUT", "parallel compute invocations for one reduction (1 = one)", 8)
    log_level: str = _env("CAT_LOG_LEVEL", "log level", "INFO")
    endpoint_url: str | None = _env(
        "AWS_ENDPOINT_URL", "boto3's standard override (moto server / LocalStack)", None
    )
    # USER_PASSWORD_AUTH app client without a secret; empty = no logins.
    user_pool_id: str = _env("CAT_USER_POOL_ID", "Cognito user pool (API only; empty = no logins)", "")
    user_pool_client_id: str = _env("CAT_USER_POOL_CLIENT_ID", "the user pool's app client", "")
    # Lambda's 6 MB invocation limit holds the base64 of a binary body (x 4/3), hence ~4.5 MB;
    # bigger uploads go through a presigned S3 PUT (/api/upload-url).
    payload_limit: int = _env(
        "CAT_PAYLOAD_LIMIT", "largest request body, bytes (bigger uploads use a presigned PUT)", 4_500_000
    )
    max_upload_bytes: int = _env(
        "CAT_MAX_UPLOAD", "largest single upload or append, bytes (0 = unlimited)", 100_000_000
    )
    # Checked from the chunk headers before anything is decompressed (a bomb costs nothing).
    max_chunk_nbytes: int = _env(
        "CAT_MAX_CHUNK_NBYTES",
        "largest decompressed chunk of an upload, drop or publish, bytes (0 = unlimited)",
        256 << 20,
    )
    max_upload_nbytes: int = _env(
        "CAT_MAX_UPLOAD_NBYTES",
        "largest decompressed total of one uploaded, dropped or published dataset, bytes (0 = unlimited)",
        2 << 30,
    )
    # Below the function's 1,024 MB: what one read may decompress (chunks touched, not bytes returned).
    max_read_nbytes: int = _env(
        "CAT_MAX_READ_NBYTES",
        "decompressed bytes one read may touch or assemble (0 = unlimited)",
        256 << 20,
    )
    max_work: int = _env(
        "CAT_MAX_WORK",
        "elements x operands one lazy expression read may evaluate, reductions included (0 = unlimited)",
        1 << 28,
    )
    user_quota_bytes: int = _env(
        "CAT_USER_QUOTA", "compressed bytes a user may keep in `@personal` (0 = unlimited)", 1_000_000_000
    )
    # Caterva2's server has the same bound (``maxusers``); counted over the whole pool.
    max_users: int = _env(
        "CAT_MAX_USERS", "most accounts `/api/adduser` lets the pool hold (0 = no bound)", 0
    )
    # The server fetches what users name: outside these prefixes only https to public addresses
    load_url_allow: str = _env(
        "CAT_LOAD_URL_ALLOW",
        "comma-separated URL prefixes `/api/load_from_url` may fetch besides public https "
        "(`s3://bucket/`, `http://10.0.0.5/`)",
        "",
    )
    login_failures_per_minute: int = _env(
        "CAT_LOGIN_FAILURES", "failed logins tolerated per user and address, and per address, per minute", 10
    )
    # Off: a client can write any X-Forwarded-For. On API Gateway the address comes from the event.
    trust_forwarded_for: bool = _env(
        "CAT_TRUST_FORWARDED_FOR",
        "take the client address from the last `X-Forwarded-For` entry (only behind a proxy that sets it)",
        False,
    )
    # Heads and catalogs only; chunks and manifests are immutable and served whatever their age.
    stale_ttl: float = _env(
        "CAT_STALE_TTL",
        "seconds a process may serve a head it holds while neither cache bucket nor origin answers",
        300.0,
    )
    # The API has 29 s; S3 calls time out after 2-3 s, then fail fast for this long.
    stall_cooldown: float = _env(
        "CAT_STALL_COOLDOWN", "seconds S3 calls fail at once after one timed out (one call probes)", 5.0
    )
    gc_grace: float = _env(
        "CAT_GC_GRACE",
        "seconds `cat-admin gc` never deletes an object after its last write (covers a publish in flight)",
        3600.0,
    )
    # Retention of earlier versions (read through ?version=): the current one is always kept.
    keep_versions: int = _env(
        "CAT_KEEP_VERSIONS",
        "versions of each dataset `cat-admin gc` keeps, the current one included (1 = only it)",
        1,
    )
    keep_seconds: float = _env(
        "CAT_KEEP_SECONDS",
        "`cat-admin gc` also keeps every version committed less than this many seconds ago (0 = none)",
        0.0,
    )
    # Price table of /api/estimate (USD; us-east-1 list prices, 2026). Documented in docs/wire.md.
    price_get: float = _env("CAT_PRICE_GET", "dollars per 1000 S3 GET requests (estimates)", 0.0004)
    price_egress_gb: float = _env(
        "CAT_PRICE_EGRESS_GB", "dollars per GB moved out of AWS to the client (estimates)", 0.09
    )
    price_lambda_gbs: float = _env(
        "CAT_PRICE_LAMBDA_GBS", "dollars per GB-second of API Lambda time (estimates)", 0.0000166667
    )
    lambda_memory_mb: int = _env(
        "CAT_LAMBDA_MEMORY_MB", "memory of the API function, MB (estimates: GB-seconds)", 1024
    )
    cors_origins: str = _env(
        "CAT_CORS_ORIGINS",
        "comma-separated web origins allowed to call the API from a browser (`*` = any; empty = no CORS)",
        "",
    )

    @field_validator("endpoint_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        # An exported-but-empty AWS_ENDPOINT_URL means "no override", as boto3 reads it.
        return value or None

    @property
    def load_url_prefixes(self) -> tuple[str, ...]:
        """``load_url_allow`` as a tuple of prefixes."""
        return tuple(p.strip() for p in self.load_url_allow.split(",") if p.strip())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build for a server process, which needs an origin bucket.

        Parameters
        ----------
        env : mapping, optional
            Variables to read instead of ``os.environ`` (nothing else is read then).

        Raises
        ------
        RuntimeError
            ``CAT_ORIGIN_BUCKET`` is not set.
        """
        # model_validate runs no settings sources: a given mapping is all there is
        settings = cls() if env is None else cls.model_validate(dict(env))
        if not settings.origin_bucket:
            raise RuntimeError("CAT_ORIGIN_BUCKET is not set: which bucket holds the published data?")
        return settings


def configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether *env* (default ``os.environ``) names an origin bucket, i.e. a server could be built."""
    env = os.environ if env is None else env
    return bool(env.get(_variable(Settings.model_fields["origin_bucket"])))


def _variable(field) -> str:
    alias = field.validation_alias
    names = alias.choices if isinstance(alias, AliasChoices) else [alias]
    return str(names[0])


def _default(value) -> str:
    if value is None:
        return "unset"
    if value == "":
        return '""'
    return str(value)


def markdown_table() -> str:
    """The environment table of ``docs/ARCHITECTURE.md``, from the fields of :class:`Settings`."""
    rows = ["| variable | meaning | default |", "|---|---|---|"]
    for field in Settings.model_fields.values():
        rows.append(f"| `{_variable(field)}` | {field.description} | {_default(field.default)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")

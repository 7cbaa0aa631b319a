"""Settings, read from the environment once (at cold start) and passed in everywhere else."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a server process (see docs/ARCHITECTURE.md)."""

    origin_bucket: str
    cache_bucket: str = ""
    ingest_bucket: str = ""
    topic_arn: str = ""
    region_label: str = "local"
    #: Largest response body, bytes.  Lambda buffers at most 6 MB, ~4.5 MB of
    #: binary after base64; 0 disables the limit.
    response_limit: int = 4_500_000
    #: Seconds a cache-bucket copy of a head is trusted before revalidation.
    head_ttl: float = 2.0
    #: Seconds a process trusts its own memo of a head (events show within this).
    memo_ttl: float = 0.2
    #: Lifetime of presigned chunk URLs in read plans, seconds (S3 allows ≤ 7 days).
    presign_ttl: int = 300
    #: In-process chunk LRU bound, bytes (a warm Lambda container keeps it).
    lru_bytes: int = 256 << 20
    compute_function: str = ""
    #: Parallel compute invocations for one reduction (1 = a single invocation).
    fanout: int = 8
    log_level: str = "INFO"
    endpoint_url: str | None = None
    #: Cognito user pool and its app client (no secret, USER_PASSWORD_AUTH); empty = no logins.
    user_pool_id: str = ""
    user_pool_client_id: str = ""
    #: Largest request body the API takes, bytes.  Lambda's 6 MB invocation limit
    #: holds the base64 of a binary body (x4/3), hence ~4.5 MB; bigger uploads go
    #: through a presigned S3 PUT (``/api/upload-url``).  0 disables the limit.
    payload_limit: int = 4_500_000
    #: Largest single upload or append, bytes (also through the presigned flow).
    max_upload_bytes: int = 100_000_000
    #: Compressed bytes one user may keep in ``@personal`` (0 = unlimited).
    user_quota_bytes: int = 1_000_000_000
    #: Failed logins tolerated per username and per client address per minute.
    login_failures_per_minute: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build from ``CAT_*`` variables (and ``AWS_ENDPOINT_URL``)."""
        env = os.environ if env is None else env
        origin = env.get("CAT_ORIGIN_BUCKET", "")
        if not origin:
            raise RuntimeError("CAT_ORIGIN_BUCKET is not set: which bucket holds the published data?")
        return cls(
            origin_bucket=origin,
            cache_bucket=env.get("CAT_CACHE_BUCKET", ""),
            ingest_bucket=env.get("CAT_INGEST_BUCKET", ""),
            topic_arn=env.get("CAT_TOPIC_ARN", ""),
            region_label=env.get("CAT_REGION_LABEL") or env.get("AWS_REGION") or "local",
            response_limit=int(env.get("CAT_RESPONSE_LIMIT", "4500000")),
            head_ttl=float(env.get("CAT_HEAD_TTL", "2.0")),
            memo_ttl=float(env.get("CAT_MEMO_TTL", "0.2")),
            presign_ttl=int(env.get("CAT_PRESIGN_TTL", "300")),
            lru_bytes=int(env.get("CAT_LRU_BYTES", str(256 << 20))),
            compute_function=env.get("CAT_COMPUTE_FUNCTION", ""),
            fanout=int(env.get("CAT_FANOUT", "8")),
            log_level=env.get("CAT_LOG_LEVEL", "INFO"),
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            user_pool_id=env.get("CAT_USER_POOL_ID", ""),
            user_pool_client_id=env.get("CAT_USER_POOL_CLIENT_ID", ""),
            payload_limit=int(env.get("CAT_PAYLOAD_LIMIT", "4500000")),
            max_upload_bytes=int(env.get("CAT_MAX_UPLOAD", "100000000")),
            user_quota_bytes=int(env.get("CAT_USER_QUOTA", "1000000000")),
            login_failures_per_minute=int(env.get("CAT_LOGIN_FAILURES", "10")),
        )

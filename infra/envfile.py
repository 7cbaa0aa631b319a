"""The env file ``make run`` writes (``.cat-local.env``): what a shell needs to use the local stack.

``set -a; . ./.cat-local.env; set +a`` exports the moto endpoint, a region, dummy
credentials (moto accepts any), the buckets, topic and user pool, the API URL for
``catclient`` and the demo user's password, so ``cat-publish``, ``cat-admin``,
``catclient`` and boto3 work against the stack without further options.  The file is
removed when the stack stops.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

__all__ = ["read_env_file", "remove_env_file", "stack_env", "write_env_file"]

#: moto accepts any credentials; these keep boto3 from looking for real ones
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def stack_env(info: Mapping, region: str = "us-east-1") -> dict[str, str]:
    """The variables of the env file, from the stack's ``ready:`` information.

    Parameters
    ----------
    info : mapping
        :meth:`infra.local.LocalStack.ready_info`.
    region : str
        The AWS region the stack's clients use (moto's resources live in it).

    Returns
    -------
    dict
        Variable name -> value, in the order the file lists them.
    """
    first = next(iter(info["cache_buckets"]))
    return {
        "AWS_ENDPOINT_URL": info["aws_endpoint_url"],
        "AWS_DEFAULT_REGION": region,
        **DUMMY_CREDENTIALS,
        "CAT_ORIGIN_BUCKET": info["origin_bucket"],
        "CAT_INGEST_BUCKET": info["ingest_bucket"],
        "CAT_CACHE_BUCKET": info["cache_buckets"][first],
        "CAT_TOPIC_ARN": info["topic_arn"],
        "CAT_USER_POOL_ID": info["user_pool_id"],
        "CAT_USER_POOL_CLIENT_ID": info["user_pool_client_id"],
        "CATCLIENT_URL": info["api_url"],
        "CAT_DEMO_USER": info["demo_user"],
        "CAT_DEMO_PASSWORD": info["demo_password"],
    }


def _render(env: Mapping[str, str]) -> str:
    lines = ["# The local stack (make run); removed when it stops. Use: set -a; . ./.cat-local.env; set +a"]
    lines += [f"{name}={shlex.quote(str(value))}" for name, value in env.items()]
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """Write *env* to *path* as ``NAME=value`` lines (shell-quoted), readable by its owner only.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # 0600: the file holds the demo user's password
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(_render(env))
    os.replace(tmp, path)


def remove_env_file(path: Path, env: Mapping[str, str]) -> bool:
    """Remove *path* if it still holds *env* (another stack may have written its own since).

    Returns
    -------
    bool
        Whether the file was removed.
    """
    try:
        if path.read_text(encoding="utf-8") != _render(env):
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of an env file written by :func:`write_env_file` (what ``. file`` would set)."""
    env = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            (env[name],) = shlex.split(value) or [""]
    return env

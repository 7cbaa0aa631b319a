"""Administration: user accounts in the Cognito user pool, and garbage collection of the origin bucket.

``python -m functions.admin users add NAME [--password PW]`` (a strong password
is generated and printed when none is given), ``users list``, ``users remove NAME``.
The pool comes from ``--pool-id`` or ``CAT_USER_POOL_ID``; boto3 finds AWS
credentials and region the usual way and honours ``AWS_ENDPOINT_URL`` (or
``--endpoint-url``) for the local stack's moto server.

Removing a user leaves their ``@personal`` data in storage (under their sub).

``python -m functions.admin gc [--delete]`` finds the chunks and manifests of
the origin bucket (``--bucket`` or ``CAT_ORIGIN_BUCKET``) that no live version
references and, with ``--delete``, deletes them; nothing written less than
``--grace`` seconds ago (``CAT_GC_GRACE``) is touched.  Without ``--delete`` it
is a dry run that only counts.
"""

from __future__ import annotations

import argparse
import json
import secrets
import string
import sys

from functions.engine.errors import AuthError


def generate_password() -> str:
    """A random password that meets Cognito's default policy (upper, lower, digit, symbol, ≥ 8)."""
    # token_urlsafe draws from [A-Za-z0-9_-] and may start with "-" (1 time in 64), which a
    # command line then reads as an option (`--password -x...`): start with a letter. The
    # suffix guarantees every class the policy asks for.
    return secrets.choice(string.ascii_letters) + secrets.token_urlsafe(18) + "-Aa1"


def admin_authenticator(pool_id: str, endpoint_url: str | None = None):
    """A :class:`~functions.adapters.cognito.CognitoAuthenticator` for admin operations on *pool_id*."""
    from functions.adapters.cognito import CognitoAuthenticator, pool_region
    from functions.aws import session

    # session(): against the local stack, region and credentials default to the emulator's
    client = session(endpoint_url).client(
        "cognito-idp", endpoint_url=endpoint_url, region_name=pool_region(pool_id)
    )
    # Admin calls need no app client: only logins and token checks do
    return CognitoAuthenticator(client, pool_id, "", endpoint_url=endpoint_url)


def _parser() -> argparse.ArgumentParser:
    from functions.settings import Settings

    settings = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m functions.admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pool-id", default=settings.user_pool_id, help="user pool id; env CAT_USER_POOL_ID")
    parser.add_argument(
        "--endpoint-url",
        default=settings.endpoint_url,
        help="AWS endpoint (moto, LocalStack); env AWS_ENDPOINT_URL",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    area = parser.add_subparsers(dest="area", required=True)
    users = area.add_parser("users", help="user accounts").add_subparsers(dest="command", required=True)
    add = users.add_parser("add", help="create a confirmed user with a permanent password")
    add.add_argument("username")
    add.add_argument("--password", help="the password (default: generate and print a strong one)")
    add.add_argument(
        "--superuser", action="store_true", help="a superuser (may add, list and delete users over the API)"
    )
    users.add_parser("list", help="list users")
    rm = users.add_parser("remove", help="delete a user (their data stays)")
    rm.add_argument("username")
    gc = area.add_parser("gc", help="garbage collection of the origin bucket (a dry run unless --delete)")
    gc.add_argument("--bucket", default=settings.origin_bucket, help="origin bucket; env CAT_ORIGIN_BUCKET")
    gc.add_argument(
        "--grace",
        type=float,
        default=settings.gc_grace,
        help="seconds after its last write an object is kept; env CAT_GC_GRACE (default %(default)s)",
    )
    gc.add_argument(
        "--keep-versions",
        type=int,
        default=max(0, settings.keep_versions - 1),
        help="earlier versions to keep per dataset; default CAT_KEEP_VERSIONS - 1 (%(default)s)",
    )
    gc.add_argument(
        "--keep-seconds",
        type=float,
        default=settings.keep_seconds,
        help="also keep versions committed less than this many seconds ago; env CAT_KEEP_SECONDS",
    )
    gc.add_argument("--delete", action="store_true", help="delete the garbage (default: only count it)")
    gc.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def _users(args) -> tuple[object, str]:
    """Run a ``users`` command; (JSON answer, text answer)."""
    auth = admin_authenticator(args.pool_id, args.endpoint_url)
    if args.command == "add":
        password = args.password or generate_password()
        user = auth.add_user(args.username, password, superuser=args.superuser)
        out = {"username": user.username, "sub": user.sub, "superuser": args.superuser}
        text = f"added {'superuser ' if args.superuser else ''}{user.username} (sub {user.sub})"
        if not args.password:
            out["password"] = password
            text += f"\npassword: {password}"
        return out, text
    if args.command == "list":
        users = auth.list_users()
        out = [{"username": u.username, "sub": u.sub} for u in users]
        return out, "\n".join(f"{u.username}\t{u.sub}" for u in users) or "(no users)"
    auth.remove_user(args.username)
    return {"removed": args.username}, f"removed {args.username}"


def _progress(phase: str, done: int) -> None:
    print(f"gc: {phase}: {done} objects", file=sys.stderr, flush=True)


def _gc(args) -> tuple[object, str]:
    """Run ``gc``; (JSON answer, text answer)."""
    from catclient.wire import human_bytes
    from functions.adapters.s3 import S3Store
    from functions.aws import s3_client
    from functions.engine.gc import collect
    from functions.settings import Settings

    settings = Settings(endpoint_url=args.endpoint_url)
    if args.delete and args.grace < settings.presign_ttl:
        print(
            f"warning: a grace under CAT_PRESIGN_TTL ({settings.presign_ttl} s) may delete chunks of a "
            "version that read plans handed out a moment ago still name",
            file=sys.stderr,
        )
    store = S3Store(s3_client(settings), args.bucket)
    report = collect(
        store,
        grace=args.grace,
        delete=args.delete,
        keep=args.keep_versions,
        keep_seconds=args.keep_seconds,
        progress=None if args.quiet else _progress,
    )
    lines = [f"s3://{args.bucket}: {report.heads} heads, {report.catalogs} catalogs, grace {args.grace:g} s"]
    for name, kind in (("chunks", report.chunks), ("manifests", report.manifests)):
        parts = [
            f"{label} {getattr(kind, label).count} ({human_bytes(getattr(kind, label).bytes)})"
            for label in ("scanned", "live", "young", "garbage")
        ]
        lines.append(f"{name}: " + ", ".join(parts))
        if args.delete:
            lines.append(
                f"{name}: deleted {kind.deleted.count} ({human_bytes(kind.deleted.bytes)}), "
                f"kept {kind.skipped.count} rewritten meanwhile"
            )
    if report.other.count:
        lines.append(f"other keys under c/ and m/ (kept): {report.other.count}")
    if not args.delete:
        garbage = report.chunks.garbage.count + report.manifests.garbage.count
        lines.append(f"dry run: --delete would delete {garbage} objects")
    return report.to_json(), "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the admin command; returns the exit status (0 ok, 1 refused, 2 usage)."""
    from functions.engine.errors import StoreError, UnsafeToCollect

    parser = _parser()
    args = parser.parse_args(argv)
    if args.area == "users" and not args.pool_id:
        parser.error("no user pool: pass --pool-id or set CAT_USER_POOL_ID")
    if args.area == "gc" and not args.bucket:
        parser.error("no origin bucket: pass --bucket or set CAT_ORIGIN_BUCKET")
    try:
        out, text = _users(args) if args.area == "users" else _gc(args)
    except (AuthError, ValueError, StoreError, UnsafeToCollect) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out) if args.json else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Administration of user accounts in the Cognito user pool.

``python -m functions.admin users add NAME [--password PW]`` (a strong password
is generated and printed when none is given), ``users list``, ``users remove NAME``.
The pool comes from ``--pool-id`` or ``CAT_USER_POOL_ID``; boto3 finds AWS
credentials and region the usual way and honours ``AWS_ENDPOINT_URL`` (or
``--endpoint-url``) for the local stack's moto server.

Removing a user leaves their ``@personal`` data in storage (under their sub).
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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the admin command; returns the exit status (0 ok, 1 refused, 2 usage)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.pool_id:
        parser.error("no user pool: pass --pool-id or set CAT_USER_POOL_ID")
    try:
        auth = admin_authenticator(args.pool_id, args.endpoint_url)
        if args.command == "add":
            password = args.password or generate_password()
            user = auth.add_user(args.username, password, superuser=args.superuser)
            out = {"username": user.username, "sub": user.sub, "superuser": args.superuser}
            if not args.password:
                out["password"] = password
            text = f"added {'superuser ' if args.superuser else ''}{user.username} (sub {user.sub})"
            if not args.password:
                text += f"\npassword: {password}"
        elif args.command == "list":
            users = auth.list_users()
            out = [{"username": u.username, "sub": u.sub} for u in users]
            text = "\n".join(f"{u.username}\t{u.sub}" for u in users) or "(no users)"
        else:
            auth.remove_user(args.username)
            out = {"removed": args.username}
            text = f"removed {args.username}"
    except (AuthError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out) if args.json else text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``catclient`` command line: Caterva2's ``cat2cli`` commands over :class:`catclient.Client`.

Exit codes: 0 ok, 1 usage error or bad request, 2 not found, 3 unauthorized,
4 server or network error.  Errors are one line on stderr
(``catclient: error: ...``); ``--json`` makes every command print one JSON
document on stdout for scripts.  What commands print is formatted by
:mod:`catclient.cli_output`; ``login`` keeps tokens with :mod:`catclient.credentials`.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from catclient import __version__, cli_history
from catclient.cli_history import add_read_options, dry_run, split_path_slice, split_version
from catclient.cli_output import emit, human_size, info_text, show_text
from catclient.client import DEFAULT_URL, Client
from catclient.credentials import (
    CredentialsError,
    config_dir,
    credentials_path,
    load_credentials,
    save_credentials,
    stored_token,
)
from catclient.errors import (
    BadRequest,
    CatClientError,
    IntegrityError,
    NotFound,
    NotSupported,
    ServerError,
    TooLarge,
    Unauthorized,
)

__all__ = ["COMMANDS", "build_parser", "config_dir", "credentials_path", "exit_code", "human_size",
           "load_credentials", "main", "save_credentials", "split_path_slice", "stored_token"]

PROG = "catclient"

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_NOT_FOUND = 2
EXIT_UNAUTHORIZED = 3
EXIT_SERVER = 4

_EXIT_CODES = """\
exit codes:
  0  success
  1  usage error or bad request (e.g. a malformed slice)
  2  not found (root, dataset, file, or a local file)
  3  unauthorized (log in with 'catclient login', or pass --token)
  4  server or network error (or a feature the server does not offer)
"""

_ENVIRONMENT = """\
environment:
  CATCLIENT_URL         server URL (default http://127.0.0.1:8000, what 'make run' serves)
  CATCLIENT_TOKEN       session token (instead of 'catclient login')
  CATCLIENT_CACHE_DIR   persistent chunk cache directory (off by default)
  CATCLIENT_CONFIG_DIR  where 'login' keeps credentials.json (default ~/.config/catclient)
"""


class _UsageError(Exception):
    """A command line that cannot be run (exit code 1)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as exceptions, so they map to exit code 1."""

    def error(self, message: str):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------- commands


def _client(args, *, auth: bool = True) -> Client:
    token = args.token or os.environ.get("CATCLIENT_TOKEN") or (stored_token(args.url) if auth else None)
    progress = not args.no_progress and sys.stderr.isatty()
    return Client(
        args.url,
        token if auth else None,
        timeout=args.timeout,
        cache_dir=args.cache_dir,
        use_plans=not args.no_plans,
        progress=progress,
    )


def cmd_roots(args) -> None:
    with _client(args) as client:
        roots = client.get_roots()

    def text() -> str:
        return "\n".join(f"{name}  (subscribed)" if info.get("subscribed") else name
                         for name, info in roots.items())

    emit(args, roots, text)


def cmd_subscribe(args) -> None:
    with _client(args) as client:
        result = client.subscribe(args.root)
    emit(args, result, f"subscribed to {result.get('name', args.root)}")


def cmd_unsubscribe(args) -> None:
    with _client(args) as client:
        result = client.unsubscribe(args.root)
    emit(args, result, f"unsubscribed from {result.get('name', args.root)}")


def cmd_list(args) -> None:
    with _client(args) as client:
        names = client.get_list(args.path)
    emit(args, names, lambda: "\n".join(names))


def cmd_url(args) -> None:
    with _client(args, auth=False) as client:
        url = client.get_download_url(args.path)
    emit(args, url, url)


def cmd_info(args) -> None:
    with _client(args) as client:
        meta = client.get_info(args.path)
    emit(args, meta, lambda: info_text(args.path.strip("/"), meta))


def cmd_show(args) -> None:
    path, slice_ = split_path_slice(args.path)
    path, version = split_version(path)
    if args.slice is not None:
        if slice_ is not None:
            raise _UsageError("give the slice either in brackets or with --slice, not both")
        slice_ = args.slice
    with _client(args) as base:
        client = base.at_version(version)
        if dry_run(args, client, path, slice_):
            return
        data = client.get_slice(path, slice_ or None, as_blosc2=False, field=args.field, filter=args.filter)
    emit(args, data, lambda: show_text(data))


def cmd_download(args) -> None:
    local = Path(args.local) if args.local else Path(".")
    path, version = split_version(args.path)
    with _client(args) as base:
        client = base.at_version(version)
        if dry_run(args, client, path, None):
            return
        dest = client.download(path, local)
    size = dest.stat().st_size
    emit(args, {"path": args.path.strip("/"), "local": str(dest), "size": size},
          f"saved {args.path.strip('/')} to {dest} ({human_size(size)})")


def _check_local_file(path: str) -> Path:
    local = Path(path)
    if not local.is_file():
        raise FileNotFoundError(f"no such local file: {local}")
    return local


def cmd_upload(args) -> None:
    local = _check_local_file(args.local)
    with _client(args) as client:
        obj = client.upload(local, args.remote)
    size = local.stat().st_size
    emit(args, {"local": str(local), "path": str(obj.path), "size": size},
          f"uploaded {local} to {obj.path} ({human_size(size)})")


def _publishable(directory: Path, include_hidden: bool) -> list[Path]:
    files = []
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if not include_hidden and any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file():
            files.append(path)
    return files


def cmd_publish(args) -> None:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no such local directory: {directory}")
    files = _publishable(directory, args.include_hidden)
    if not files:
        raise _UsageError(f"{directory} has no files to publish")
    root = args.root.strip("/")
    uploaded = []
    with _client(args) as client:
        for i, local in enumerate(files):
            remote = f"{root}/{local.relative_to(directory).as_posix()}"
            try:
                obj = client.upload(local, remote)
            except CatClientError as exc:
                # Say how far it got: the files before this one are on the server
                raise type(exc)(f"{exc} (while uploading {local}; {i} of {len(files)} files were published)",
                                status=exc.status, detail=exc.detail, url=exc.url) from None
            size = local.stat().st_size
            uploaded.append({"local": str(local), "path": str(obj.path), "size": size})
            if not args.json:
                print(f"uploaded {local} to {obj.path} ({human_size(size)})")
    total = sum(u["size"] for u in uploaded)
    summary = {"root": root, "directory": str(directory), "files": len(uploaded), "bytes": total,
               "uploaded": uploaded}
    emit(args, summary,
          f"published {len(uploaded)} file(s), {human_size(total)}, from {directory} to {root}")


def cmd_rm(args) -> None:
    with _client(args) as client:
        removed = client.remove(args.path)
    emit(args, {"removed": str(removed)}, f"removed {removed}")


def _transfer(args, move: bool) -> None:
    with _client(args) as client:
        obj = (client.move if move else client.copy)(args.src, args.dst)
    src = args.src.strip("/")
    emit(args, {"src": src, "path": str(obj.path)}, f"{'moved' if move else 'copied'} {src} to {obj.path}")


def cmd_unfold(args) -> None:
    with _client(args) as client:
        out = client.unfold(args.path)
    skipped = "".join(f"\n  skipped {s['path']}: {s['reason']}" for s in out["skipped"])
    emit(args, out, f"unfolded {args.path.strip('/')} into {out['path']} ({out['arrays']} array(s)){skipped}")


def cmd_login(args) -> None:
    username = args.username or os.environ.get("CATCLIENT_USER")
    if not username:
        if not sys.stdin.isatty():
            raise _UsageError("give a username (catclient login USER)")
        username = input("username: ").strip()
    password = args.password if args.password is not None else os.environ.get("CATCLIENT_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise _UsageError("give a password with --password or CATCLIENT_PASSWORD (no terminal to ask on)")
        password = getpass.getpass(f"password for {username}: ")
    with _client(args, auth=False) as client:
        token = client.login(username, password)
    data = load_credentials()
    url = args.url.rstrip("/")
    data["servers"][url] = {"token": token, "username": username,
                            "saved": datetime.now(UTC).isoformat(timespec="seconds")}
    path = save_credentials(data)
    emit(args, {"url": url, "username": username, "credentials": str(path)},
          f"logged in to {url} as {username}; token saved in {path}")


def cmd_logout(args) -> None:
    data = load_credentials()
    url = args.url.rstrip("/")
    had = data["servers"].pop(url, None) is not None
    if had:
        save_credentials(data)
    emit(args, {"url": url, "removed": had},
          f"forgot the token for {url}" if had else f"no token was stored for {url}")


# --------------------------------------------------------------------------- parser


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options every command takes, before or after the command name."""

    def default(value):
        return argparse.SUPPRESS if suppress else value

    g = parser.add_argument_group("common options")
    g.add_argument("--url", default=default(os.environ.get("CATCLIENT_URL", DEFAULT_URL)),
                   help=f"server URL (env CATCLIENT_URL; default {DEFAULT_URL})")
    g.add_argument("--json", action="store_true", default=default(False),
                   help="print one JSON document on stdout (for scripts)")
    g.add_argument("--token", default=default(None),
                   help="session token (env CATCLIENT_TOKEN; default: the one 'login' saved for --url)")
    g.add_argument("--cache-dir", default=default(os.environ.get("CATCLIENT_CACHE_DIR") or None),
                   help="persistent chunk cache directory (env CATCLIENT_CACHE_DIR)")
    g.add_argument("--no-plans", action="store_true", default=default(False),
                   help="read everything through the API, never straight from S3")
    g.add_argument("--no-progress", action="store_true", default=default(False),
                   help="no progress bars (they only show on a terminal, for transfers taking a moment)")
    g.add_argument("--timeout", type=float, default=default(30.0), help="seconds per request (default 30)")
    g.add_argument("-v", "--verbose", action="store_true", default=default(False),
                   help="log what the client does (plans, fallbacks) on stderr")


def _args_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="root name, e.g. example")


def _args_path(help_: str) -> Callable[[argparse.ArgumentParser], None]:
    def setup(p: argparse.ArgumentParser) -> None:
        p.add_argument("path", help=help_)

    return setup


def _args_src_dst(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="source path")
    p.add_argument("dst", help="destination path")


def _args_show(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="PATH, PATH[SLICE], PATH@VERSION[SLICE], e.g. example/dir2/ds-4d.b2nd[1,2,3]")
    p.add_argument("--slice", help="the slice, instead of brackets, e.g. '2:4, 3:6'")
    p.add_argument("--field", help="one field of a structured array")
    p.add_argument("--filter", help="a boolean expression over the fields, e.g. '(a > 990) & d'")
    add_read_options(p)


def _args_download(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset or file path (PATH@VERSION: an earlier version)")
    p.add_argument("local", nargs="?", help="local file, or existing directory (default: .)")
    add_read_options(p)


def _args_upload(p: argparse.ArgumentParser) -> None:
    p.add_argument("local", help="local file (.b2nd/.b2frame stay datasets; others are stored compressed)")
    p.add_argument("remote", help="destination path; a directory keeps the local name")


def _args_publish(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", help="local directory to publish")
    p.add_argument("root", help="where to put it, e.g. @personal/mydata or @public")
    p.add_argument("--include-hidden", action="store_true", help="also upload dotfiles")


def _args_login(p: argparse.ArgumentParser) -> None:
    p.add_argument("username", nargs="?", help="account name (env CATCLIENT_USER; asked if missing)")
    p.add_argument("--password", help="password (env CATCLIENT_PASSWORD; asked on a terminal if missing)")


def _no_args(p: argparse.ArgumentParser) -> None:
    return None


#: (name, function, one-line help, examples epilog, argument setup)
COMMANDS: list[tuple[str, Callable, str, str, Callable[[argparse.ArgumentParser], None]]] = [
    ("roots", cmd_roots, "list the roots the server offers",
     "examples:\n  catclient roots\n  catclient roots --json", _no_args),
    ("subscribe", cmd_subscribe, "make this region follow a root (prefetch its changes)",
     "examples:\n  catclient subscribe example", _args_root),
    ("unsubscribe", cmd_unsubscribe, "stop following a root (reads keep working, on demand)",
     "examples:\n  catclient unsubscribe example", _args_root),
    ("list", cmd_list, "list the files below a root or directory, recursively",
     "examples:\n  catclient list example\n  catclient list example/dir1 --json",
     _args_path("root or directory, e.g. example or example/dir1")),
    ("url", cmd_url, "print the download URL of a dataset or file",
     "examples:\n  catclient url example/dir1/ds-2d.b2nd",
     _args_path("dataset or file path, e.g. example/README.md")),
    ("info", cmd_info, "show metadata of a dataset, file or directory",
     "examples:\n  catclient info example/dir1/ds-2d.b2nd\n  catclient info example/README.md --json",
     _args_path("dataset, file, directory or root")),
    ("show", cmd_show, "print (a slice of) a dataset or file",
     "The slice uses Caterva2's syntax: one entry per dimension, each an integer or\n"
     "start:stop[:step]; quote it if your shell treats brackets specially.\n\n"
     "examples:\n  catclient show 'example/dir2/ds-4d.b2nd[1,2,3]'\n"
     "  catclient show example/dir1/ds-2d.b2nd --slice '2:4, 3:6' --json\n"
     "  catclient show 'example/README.md[:40]'\n"
     "  catclient show example/ds-1d-fields.b2nd --field a\n"
     "  catclient show example/ds-1d-fields.b2nd --filter '(a > 990) & d'", _args_show),
    ("download", cmd_download, "save a dataset or file locally",
     "Large datasets are assembled locally from chunks read straight from S3.\n\n"
     "examples:\n  catclient download example/dir1/ds-2d.b2nd\n"
     "  catclient download example/README.md /tmp/readme.md", _args_download),
    ("upload", cmd_upload, "upload a local file (needs login)",
     "examples:\n  catclient upload data.b2nd @personal/data.b2nd\n"
     "  catclient upload notes.txt @public/docs/", _args_upload),
    ("publish", cmd_publish, "upload every file of a local directory under a root (needs login)",
     "Files keep their paths relative to DIRECTORY; hidden files are skipped unless\n"
     "--include-hidden.  Prints each upload and a summary.\n\n"
     "examples:\n  catclient publish ./root-example @personal/example\n"
     "  catclient publish ./data @public/data --json", _args_publish),
    ("rm", cmd_rm, "remove a dataset, file or directory (needs login)",
     "examples:\n  catclient rm @personal/data.b2nd", _args_path("what to remove")),
    ("mv", lambda args: _transfer(args, move=True), "move a dataset, file or directory (needs login)",
     "examples:\n  catclient mv @personal/a.b2nd @personal/b.b2nd", _args_src_dst),
    ("cp", lambda args: _transfer(args, move=False), "copy a dataset, file or directory (needs login)",
     "examples:\n  catclient cp example/ds-1d.b2nd @personal/ds-1d.b2nd", _args_src_dst),
    ("unfold", cmd_unfold, "unfold an uploaded HDF5 file into a directory of arrays (needs login)",
     "examples:\n  catclient unfold @personal/data.h5   # -> @personal/data/...", _args_path("an .h5 file")),
    ("login", cmd_login, "log in and save the session token for --url",
     "The token is saved in $CATCLIENT_CONFIG_DIR/credentials.json (default\n"
     "~/.config/catclient), readable by you only, and used by later commands.\n\n"
     "examples:\n  catclient login alice@example.com\n"
     "  CATCLIENT_PASSWORD=secret catclient login alice@example.com", _args_login),
    ("logout", cmd_logout, "forget the session token saved for --url",
     "examples:\n  catclient logout", _no_args),
    *cli_history.COMMANDS,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``catclient`` argument parser."""
    parser = _Parser(
        prog=PROG,
        description="Command line client of a Caterva2-compatible server; reads large slices "
                    "straight from S3 through read plans.",
        epilog="examples:\n"
               "  catclient roots\n"
               "  catclient list example\n"
               "  catclient info example/dir1/ds-2d.b2nd\n"
               "  catclient show 'example/dir2/ds-4d.b2nd[1,2,3]'\n"
               "  catclient download example/dir1/ds-2d.b2nd\n"
               "  catclient --url http://127.0.0.1:8001 --json list example\n\n"
               + _EXIT_CODES + "\n" + _ENVIRONMENT
               + "\nRun 'catclient COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, fn, help_, epilog, setup in COMMANDS:
        p = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".",
                           epilog=epilog + "\n\n" + _EXIT_CODES, parents=[common],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        setup(p)
        p.set_defaults(func=fn)
    return parser


def exit_code(exc: BaseException) -> int:
    """The exit code an error maps to."""
    if isinstance(exc, NotSupported):
        return EXIT_SERVER
    if isinstance(exc, NotFound | FileNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, Unauthorized):
        return EXIT_UNAUTHORIZED
    if isinstance(exc, BadRequest | TooLarge | _UsageError | CredentialsError):
        return EXIT_USAGE
    if isinstance(exc, ServerError | IntegrityError | CatClientError):
        return EXIT_SERVER
    return EXIT_USAGE


def _fail(exc: BaseException) -> int:
    message = " ".join(str(exc).split()) or type(exc).__name__
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return exit_code(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 ok, 1 usage or bad request, 2 not found, 3 unauthorized, 4 server/network.

    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        return _fail(exc)
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except (CatClientError, _UsageError, CredentialsError, FileNotFoundError) as exc:
        return _fail(exc)
    except OSError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return EXIT_OK


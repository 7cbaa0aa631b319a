"""``catclient`` commands and options of versions, the change feed and estimates.

``PATH@N`` names version *N* of a dataset (``catclient show 'example/ds.b2nd@2[0:10]'``,
``catclient download example/ds.b2nd@2``); ``--dry-run`` on a read prints what it
would do and cost (``GET /api/estimate``) instead of reading.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

from catclient.cli_output import emit, human_size

_AT_VERSION = re.compile(r"^(?P<path>.+?)@(?P<version>[0-9]+)$")
_PATH_SLICE = re.compile(r"^(?P<path>.+?)\[(?P<slice>[^\[\]]*)\]$")


def split_path_slice(text: str) -> tuple[str, str | None]:
    """``"root/ds.b2nd[1, 2:4]"`` -> ``("root/ds.b2nd", "1, 2:4")``; no brackets -> slice None."""
    m = _PATH_SLICE.match(text.strip())
    if m:
        return m["path"], m["slice"]
    return text, None


def split_version(path: str) -> tuple[str, int | None]:
    """``"root/ds.b2nd@2"`` -> ``("root/ds.b2nd", 2)``; no ``@N`` suffix -> version None."""
    m = _AT_VERSION.match(path.strip())
    if m and "/" in m["path"]:
        return m["path"], int(m["version"])
    return path, None


def estimate_text(est: dict) -> str:
    """What ``--dry-run`` prints."""
    cost = est["cost_usd"]
    return (
        f"{est['path']} v{est['version']} [{est['slice_']}]: {est['chunks']} chunk(s), "
        f"{est['s3_gets']} S3 GET(s), {human_size(est['compressed_bytes'])} compressed moved, "
        f"{human_size(est['decompressed_bytes'])} decompressed, about {human_size(est['answer_bytes'])} "
        f"answered via {est['route']}; about ${cost['total']:.8f} "
        f"(GETs ${cost['s3_gets']:.8f}, egress ${cost['egress']:.8f}, Lambda ${cost['lambda']:.8f})"
    )


def dry_run(args, client, path: str, slice_: str | None) -> bool:
    """Print the estimate of a read when ``--dry-run`` was given; whether it was (then nothing is read)."""
    if not getattr(args, "dry_run", False):
        return False
    est = client.estimate(path, slice_ or None)
    emit(args, est, lambda: estimate_text(est))
    return True


def add_read_options(p: argparse.ArgumentParser) -> None:
    """``--dry-run`` of the read commands."""
    p.add_argument("--dry-run", action="store_true",
                   help="print what the read would do and cost (chunks, S3 GETs, bytes, dollars), "
                        "and read nothing")


def _history_text(path: str, answer: dict) -> str:
    lines = [f"{path}: current version {answer['current']}"]
    for v in answer["versions"]:
        changed = "?" if v["changed_chunks"] is None else v["changed_chunks"]
        who = f"  by {v['author']}" if v.get("author") else ""
        mark = "  (current)" if v["current"] else ""
        lines.append(f"  v{v['version']}  {v['mtime']}  shape {v['shape']}  {human_size(v['cbytes'])}  "
                     f"{changed}/{v['nchunks']} chunk(s) changed{who}{mark}")
    if answer.get("more"):
        lines.append("  ... (older versions: --before)")
    return "\n".join(lines)


def cmd_history(args) -> None:
    from catclient.cli import _client

    with _client(args) as client:
        answer = client.history(args.path, limit=args.limit, before=args.before)
    emit(args, answer, lambda: _history_text(args.path.strip("/"), answer))


def cmd_changes(args) -> None:
    from catclient.cli import _client

    with _client(args) as client:
        page = client.changes(args.root, args.since, limit=args.limit)

    def text() -> str:
        lines = [f"{c['seq']}  {c['type']:9}  {c['path']}  v{c['version']}  "
                 f"chunks {'all' if c['changed_chunks'] is None else len(c['changed_chunks'])}"
                 for c in page["changes"]]
        return "\n".join([*lines, f"cursor: {page['cursor']}" + ("  (more)" if page["more"] else "")])

    emit(args, page, text)


def cmd_sync(args) -> None:
    from catclient.cli import _client
    from catclient.sync import sync

    with _client(args) as client:
        report = sync(client, args.root, args.directory)

    def text() -> str:
        return (f"synced {args.root} into {args.directory}: {report.changes} change(s), "
                f"{report.written} file(s) written, {report.removed} removed; fetched "
                f"{report.chunks_fetched} chunk(s), {human_size(report.bytes_fetched)} of "
                f"{human_size(report.root_cbytes)}; {report.requests} request(s)")

    emit(args, report.to_json(), text)


def _args_sync(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="root name, e.g. example")
    p.add_argument("directory", help="local directory of the copy (created if missing)")


def _args_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset or file path")
    p.add_argument("--limit", type=int, default=50, help="versions to list (default 50)")
    p.add_argument("--before", type=int, help="only versions older than this one")


def _args_changes(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", help="root name")
    p.add_argument("--since", help="the cursor an earlier answer printed (default: from the start)")
    p.add_argument("--limit", type=int, default=100, help="changes per page (default 100)")


#: Appended to ``catclient.cli.COMMANDS``
COMMANDS: list[tuple[str, Callable, str, str, Callable[[argparse.ArgumentParser], None]]] = [
    ("sync", cmd_sync, "keep a local directory in step with a root, fetching only changed chunks",
     "The first run copies the root; later runs read its change feed and fetch only the\n"
     "chunks that changed (files are replaced atomically; an interrupted run resumes).\n"
     "State: DIRECTORY/.catclient-sync.json.\n\n"
     "examples:\n  catclient sync example ./example\n  catclient sync example ./example --json",
     _args_sync),
    ("history", cmd_history, "list the kept versions of a dataset, newest first",
     "Read any of them with PATH@N: catclient show 'example/ds-1d.b2nd@2[0:10]'.\n\n"
     "examples:\n  catclient history example/ds-1d.b2nd\n  catclient history example/ds-1d.b2nd --json",
     _args_history),
    ("changes", cmd_changes, "list a root's committed changes after a cursor",
     "examples:\n  catclient changes example\n  catclient changes example --since c1.WzMsMSwi...",
     _args_changes),
]

"""Our local stack in a process of its own, driven over stdin/stdout by the harness.

Run as ``python -m bench.stackproc --regions 2 --response-limit 4500000``.  It
starts :class:`infra.local.LocalStack` with moto as *its* child process, prints
one line ``ready: {json}`` and then answers one JSON command per stdin line with
one JSON line on stdout:

- ``{"cmd": "reset_cache", "regions": ["r1"]}``: empty the regions' cache
  buckets and everything their ``Region`` keeps in process (chunk LRU, head
  memos, parsed manifests, the chunk keys known to be in the cache bucket): a
  cold region;
- ``{"cmd": "stop"}`` (or end of stdin): stop everything.

Why a process of its own: the API servers then never share a GIL with the
benchmark's clients, just as Caterva2's ``cat2-server`` runs in its own process
and S3 (moto, here) in yet another.  On a 2-core machine that is the difference
between measuring the system and measuring GIL contention inside the harness.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from functions.engine.answers import AnswerLimits
from functions.engine.region import ByteLRU, KnownSet
from infra.local import LocalStack, StackConfig


def _empty_bucket(s3, bucket: str) -> int:
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
        deleted += len(keys)
    return deleted


#: Region attributes that are configuration or handled by _reset; anything else is
#: state the product added since, which _reset would not clear (reported to the harness)
_REGION_ATTRS = {
    "origin", "cache", "head_ttl", "memo_ttl", "lru", "_memo", "_memo_lock", "_pool", "_wall",
    "verify_chunks", "in_cache", "_manifests", "_manifest_lock", "copies", "cold",
    "on_revalidate", "stale_ttl",
}  # fmt: skip


def _reset(stack: LocalStack, labels: list[str]) -> tuple[dict, dict]:
    """Make the regions cold; returns (objects deleted, Region attributes not reset) per region."""
    s3 = stack.client("s3")
    out, not_reset = {}, {}
    for rt in stack.regions:
        if rt.label not in labels:
            continue
        region = rt.services.region
        if getattr(region, "copies", None) is not None:
            region.copies.flush(30)  # background copies of the last reads land before the bucket is emptied
        # Everything a Region keeps in process (a warm container's state), so that a
        # cold region reads head, manifest and chunks from the origin again:
        region.lru = ByteLRU(region.lru.max_bytes)  # chunk bytes
        with region._memo_lock:  # heads, catalogs, roots
            region._memo.clear()
        # chunk keys known to be in the cache bucket: after emptying the bucket, a plan
        # must HEAD (and copy) every chunk again, as a cold region does
        region.in_cache = KnownSet(region.in_cache.max_items)
        if hasattr(region, "cold"):  # versions read while their head had no copy here
            region.cold = type(region.cold)(region.cold.ttl, region.cold.max_items)
        manifests = getattr(region, "_manifests", None)  # parsed manifests (since 71a447a)
        if manifests is not None:
            with region._manifest_lock:
                manifests.clear()
        read = rt.services.read  # decoded chunks of tiny reads (functions/engine/hotchunks.py)
        if getattr(read, "decoded", None) is not None:
            read.decoded = type(read.decoded)(read.decoded.max_bytes)
        out[rt.label] = _empty_bucket(s3, stack.resources["plan"].cache_buckets[rt.label])
        unknown = sorted(set(vars(region)) - _REGION_ATTRS)
        if unknown:
            not_reset[rt.label] = unknown
    return out, not_reset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stackproc")
    p.add_argument("--regions", type=int, default=2)
    p.add_argument("--response-limit", type=int, default=4_500_000)
    p.add_argument(
        "--unlimited", default="", help="comma-separated region labels served without the response limit"
    )
    args = p.parse_args(argv)
    # The control channel is the original stdout; everything else anything prints
    # (Powertools logs to stdout) goes to stderr, so it can neither corrupt the
    # channel nor fill its pipe while the harness is not reading
    ctl = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING)
    cfg = StackConfig(
        port=0,
        regions=args.regions,
        root_dir=None,
        response_limit=args.response_limit,
        moto_in_thread=False,
        prefix="cat-bench",
    )
    stack = LocalStack(cfg)
    stack.start(publish=False)
    unlimited = {label for label in args.unlimited.split(",") if label}
    for rt in stack.regions:
        if rt.label in unlimited:
            # Read per request from the service, so this is the same as starting
            # that region with CAT_RESPONSE_LIMIT=0
            rt.services.read.limits = AnswerLimits(0, 0)
    info = stack.ready_info()
    info["limits"] = {rt.label: rt.services.read.response_limit for rt in stack.regions}
    info["moto_pid"] = getattr(stack._moto, "pid", None)
    print("ready: " + json.dumps(info), file=ctl, flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("cmd") == "stop":
                print(json.dumps({"ok": True}), file=ctl, flush=True)
                break
            if cmd.get("cmd") == "reset_cache":
                deleted, not_reset = _reset(
                    stack, list(cmd.get("regions") or [rt.label for rt in stack.regions])
                )
                answer = {"ok": True, "deleted": deleted, "not_reset": not_reset}
                print(json.dumps(answer), file=ctl, flush=True)
            else:
                print(json.dumps({"ok": False, "error": f"unknown command {cmd!r}"}), file=ctl, flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

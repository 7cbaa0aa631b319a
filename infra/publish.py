r"""``cat-publish``: publish a local directory (or an HDF5 file) as a named root, into the origin bucket.

This is the publisher's tool (it needs write access to the origin bucket and the
topic, i.e. AWS credentials), as opposed to ``catclient upload`` which goes
through the API as a user.  Only chunks that changed are uploaded; an unchanged
file is a no-op (no new version, no event); files deleted from the directory
are deleted from the root (with a ``deleted`` event).

Examples
--------
Against the local stack (``make run`` prints the endpoint, bucket and topic)::

    AWS_ENDPOINT_URL=http://127.0.0.1:PORT cat-publish root-example --root example \
        --bucket cat-local-origin --topic-arn arn:aws:sns:us-east-1:123456789012:cat-local-changes

Against AWS, with the stack's outputs::

    cat-publish ./data --root mydata --bucket <OriginBucketName> --topic-arn <ChangeTopicArn>

An HDF5 file as a root (each dataset /a/b becomes a/b.b2nd)::

    cat-publish measurements.h5 --root meas
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from catclient.wire import human_bytes
from functions.engine.content import NotBlosc2
from functions.engine.errors import BadRequest
from functions.engine.paths import split_path
from functions.engine.publish import Conflict, PublishResult
from functions.settings import Settings


def _parser(settings: Settings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cat-publish",
        description="Publish a local directory as a root: Blosc2 chunks to S3, one change event per version.",
        epilog=__doc__.split("Examples", 1)[1].replace("--------\n", "") if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "directory", type=Path, help="directory whose files become the root's datasets, or an .h5/.hdf5 file"
    )
    p.add_argument("--root", required=True, help="root name (e.g. example)")
    p.add_argument("--bucket", default=settings.origin_bucket, help="origin bucket (env CAT_ORIGIN_BUCKET)")
    p.add_argument(
        "--topic-arn",
        default=settings.topic_arn,
        help="SNS topic for change events (env CAT_TOPIC_ARN; empty: no events)",
    )
    p.add_argument(
        "--no-unfold",
        action="store_true",
        help="publish a directory's .h5/.hdf5 files only as files (default: also unfolded below x/)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per dataset")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    return p


def _fail(message: str, code: int = 1) -> int:
    print(f"cat-publish: error: {message}", file=sys.stderr)
    return code


def _check(args) -> str | None:
    """What is wrong with the arguments, or None."""
    if not args.bucket:
        return "--bucket (or CAT_ORIGIN_BUCKET) is required"
    if not args.directory.is_dir() and not _is_hdf5(args.directory):
        return f"{args.directory} is not a directory or an HDF5 file"
    try:
        split_path(args.root)
    except BadRequest as exc:
        return str(exc)
    return None


def _is_hdf5(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".h5", ".hdf5")


class _Output:
    """What cat-publish prints per dataset (lines or JSON) and what it remembers of failures."""

    def __init__(self, args) -> None:
        self.args, self.failed = args, []

    def report(self, result: PublishResult) -> None:
        if self.args.json:
            print(json.dumps(result.to_json()), flush=True)
        elif not self.args.quiet:
            extra = (
                f"  {result.uploaded_chunks} chunk(s), {human_bytes(result.uploaded_bytes)}"
                if result.uploaded_chunks
                else ""
            )
            print(f"{result.status:>9}  {self.args.root}/{result.path}  v{result.version}{extra}", flush=True)

    def skipped(self, path: str, exc: Exception) -> None:
        self.failed.append(path)
        print(f"cat-publish: error: {self.args.root}/{path}: {exc} (skipped)", file=sys.stderr)

    def unconverted(self, path: str, reason: str) -> None:
        print(f"cat-publish: skipped {path}: {reason}", file=sys.stderr)

    def summary(self, results: list[PublishResult]) -> None:
        if not self.args.json:
            changed = sum(r.status in ("published", "deleted") for r in results)
            sent = sum(r.uploaded_bytes for r in results)
            root = self.args.root
            print(f"{root}: {changed} of {len(results)} dataset(s) changed, {human_bytes(sent)} uploaded")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit codes: 0 ok, 1 bad input, 2 conflict, 4 storage error."""
    env = Settings()
    args = _parser(env).parse_args(argv)
    problem = _check(args)
    if problem:
        return _fail(problem)
    # Imported here: boto3 costs start-up time that --help and bad arguments need not pay
    from functions.aws import build_publisher

    publisher = build_publisher(
        env.model_copy(update={"origin_bucket": args.bucket, "topic_arn": args.topic_arn})
    )
    out = _Output(args)
    try:
        if _is_hdf5(args.directory):
            results = _publish_hdf5(publisher, args.root, args.directory, out.report, out.unconverted)
        else:
            results = publisher.publish_directory(
                args.root, args.directory, progress=out.report, on_error=out.skipped, on_skip=out.unconverted,
                unfold_hdf5=not args.no_unfold,
            )
    except (NotBlosc2, BadRequest) as exc:
        return _fail(str(exc))
    except Conflict as exc:
        return _fail(str(exc), 2)
    except Exception as exc:  # noqa: BLE001 - one line for the user, not a traceback
        return _fail(f"{type(exc).__name__}: {exc}", 4)
    out.summary(results)
    return 1 if out.failed else 0


def _publish_hdf5(publisher, root: str, path: Path, report, unconverted) -> list[PublishResult]:
    """An HDF5 file as the whole root; what cannot be converted is reported, the rest published."""
    from functions.engine.hdf5.unfold import publish_hdf5_root

    try:
        outcome = publish_hdf5_root(publisher, root, path, progress=report)
    except OSError as exc:  # h5py: not an HDF5 file, or unreadable
        raise BadRequest(f"{path} cannot be read as HDF5: {exc}") from None
    for where, reason in outcome.skipped:
        unconverted(where, reason)
    return outcome.results


if __name__ == "__main__":
    raise SystemExit(main())

"""Publishing as commands: ``cat-publish`` against a ``python -c upload_file`` command, start-up included.

The in-process rows of the publish case compare our Publisher with ``boto3
upload_file`` once both are imported and have a client.  A user runs a command:
``cat-publish DIR`` pays the interpreter's start, its imports (blosc2, numpy,
pydantic, boto3) and an S3 client's set-up before the first byte moves.  The
fair peer is the same for boto3: a fresh interpreter that imports boto3, makes a
client and calls ``upload_file``.  The two take turns, each into an empty
bucket, and the start-up pieces are timed alone beside them (the breakdown).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.common import BIG, Context, _ratio, _row
from bench.measure import repeat_interleaved

#: The peer command: what a user scripting boto3 runs (argv: file, bucket, key)
UPLOAD_FILE = "import sys, boto3; boto3.client('s3').upload_file(sys.argv[1], sys.argv[2], sys.argv[3])"

#: Start-up pieces timed alone: (name, python -c code)
STARTUP = {
    "python_start": "pass",
    "imports_cat_publish": "import infra.publish, functions.aws",
    "startup_cat_publish": (
        "import infra.publish, functions.aws as a, functions.settings as s;"
        " a.s3_client(s.Settings(origin_bucket='b'))"
    ),
    "startup_upload_file": "import boto3; boto3.client('s3')",
}


def _env(ctx: Context) -> dict[str, str]:
    # The commands see only the stack's endpoint and moto's placeholder credentials:
    # none of the harness's CAT_* settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAT_")}
    env.update(
        AWS_ENDPOINT_URL=ctx.stack.endpoint_url,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    return env


def _command(argv: list[str], env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr[-500:]}")

    return run


def publishing_commands(ctx: Context, bucket: str, empty_bucket: Callable[[], None]) -> dict:
    """``cat-publish`` of the 200 MB array vs a ``upload_file`` command; the start-up breakdown."""
    src = ctx.files["big"]
    size = src.stat().st_size
    env = _env(ctx)
    python = sys.executable
    cat_publish = str(Path(python).with_name("cat-publish"))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "root"
        directory.mkdir()
        try:
            os.link(src, directory / BIG)
        except OSError:  # another file system
            shutil.copyfile(src, directory / BIG)
        ours = [cat_publish, str(directory), "--root", "pubcli", "--bucket", bucket, "--topic-arn", ""]
        ours.append("--quiet")
        peer = [python, "-c", UPLOAD_FILE, str(src), bucket, "plain/" + BIG]
        fns = {
            "cat_publish": _command(ours, env),
            "upload_file_command": _command(peer, env),
            **{name: _command([python, "-c", code], env) for name, code in STARTUP.items()},
        }
        ctx.log("  publishing as commands (start-up included)")
        timings = repeat_interleaved(
            fns,
            ctx.reps,
            before={"cat_publish": empty_bucket, "upload_file_command": empty_bucket},
            pids=ctx.pids,
        )
    moving = ("cat_publish", "upload_file_command")
    rows = {name: _row(t, size if name in moving else 0) for name, t in timings.items()}
    med = {name: t.median for name, t in timings.items()}
    ctx.log(f"    cat-publish {med['cat_publish']:.3f} s, upload_file command {med[moving[1]]:.3f} s")
    return {
        "rows": rows,
        "time_ratio": _ratio(med["cat_publish"], med["upload_file_command"]),
        # What each command spends before its first request, and the rest
        "breakdown_s": {
            "python_start": med["python_start"],
            "cat_publish_imports": med["imports_cat_publish"] - med["python_start"],
            "cat_publish_client": med["startup_cat_publish"] - med["imports_cat_publish"],
            "cat_publish_work": med["cat_publish"] - med["startup_cat_publish"],
            "upload_file_startup": med["startup_upload_file"] - med["python_start"],
            "upload_file_work": med["upload_file_command"] - med["startup_upload_file"],
        },
    }

"""Smoke test of the built Lambda artifact (``make sam-smoke``, after ``make sam-build``).

Runs each handler from *only* what ``sam build`` produced -- the function code
(``.aws-sam/build/<Function>``) and the dependency layer (``.aws-sam/build/DepsLayer/python``)
on ``PYTHONPATH``, in a fresh virtualenv of the runtime's Python (3.12) with nothing
installed -- against moto's server, with the events AWS would deliver:

1. an S3 drop, as the real S3 notification moto put on the ingest queue, in a Lambda SQS
   batch with one unreadable record (which must come back in ``batchItemFailures``);
2. the change event that publish emitted, as the real SNS envelope on a sync queue;
3. an HTTP API v2 ``GET /api/roots``, and a binary ``GET /api/fetch`` (base64 body);
4. a compute invocation (a slice of a lazy expression);
5. the streaming function's ``run.sh`` as the Lambda Web Adapter starts it (the adapter
   itself is a Lambda extension and does not run here): its readiness probe, then a fetch
   past the buffered limit, which must arrive streamed (in pieces) and byte-exact.

Each handler runs in its own process, as a Lambda container does, with
``AWS_LAMBDA_FUNCTION_NAME`` set: its module builds clients and app at import (the init
phase), and the import time printed is that cold start. A module loaded from anywhere but
the artifact and the interpreter's standard library fails the test.

The driver (this module) runs in the project's virtualenv: it starts moto, creates the
template's resources (``infra.template``) and checks the answers with numpy and blosc2.
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = "3.12"  # template.yaml's Runtime: python3.12
HANDLERS = {
    "ingest": ("IngestFunction", "functions.handlers.ingest"),
    "sync": ("SyncFunction", "functions.handlers.sync"),
    "api": ("ApiFunction", "functions.handlers.api"),
    "compute": ("ComputeFunction", "functions.handlers.compute"),
}

# What runs inside the clean interpreter: import the handler module (timed: the init
# phase), invoke it with each event, report, and list modules loaded from elsewhere.
CHILD = r"""
import json, os, sys, time
spec = json.load(sys.stdin)
t0 = time.perf_counter()
module = __import__(spec["module"], fromlist=["handler"])
imported = time.perf_counter() - t0
# Lambda's init phase built the clients (and the API's app) at import, before any event
from functions.handlers import common
built_at_init = common._services is not None and getattr(module, "_handler", True) is not None

class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
    aws_request_id = "smoke-request"
    def get_remaining_time_in_millis(self):
        return 29000

answers, took = [], []
for event in spec["events"]:
    t1 = time.perf_counter()
    answers.append(module.handler(event, Context()))
    took.append(time.perf_counter() - t1)
allowed = [os.path.realpath(p) for p in spec["allowed"]]
foreign = sorted(
    f"{name}: {path}" for name, m in list(sys.modules.items())
    if (path := getattr(m, "__file__", None))
    and not any(os.path.realpath(path).startswith(a) for a in allowed)
)
sys.stdout.write("\n@@SMOKE@@" + json.dumps(
    {"import_s": imported, "invoke_s": took, "answers": answers, "foreign": foreign, "python": sys.version,
     "built_at_init": built_at_init}
))
"""


class SmokeFailure(AssertionError):
    """The artifact did not behave as the template's event sources need."""


def find_python(version: str = RUNTIME) -> str | None:
    """An interpreter of *version*: on PATH, or one of pyenv's."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    for path in candidates:
        if path and subprocess.run([path, "-c", "pass"], capture_output=True).returncode == 0:
            return path
    return None


def clean_venv(python: str, where: Path) -> Path:
    """A virtualenv with nothing installed (not even pip); returns its interpreter."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(where)], check=True)
    return where / "bin" / "python"


class Artifact:
    """The ``sam build`` output: one directory per function, and the layer's ``python/``."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = build_dir
        self.layer = build_dir / "DepsLayer" / "python"
        if not self.layer.is_dir():
            raise SmokeFailure(f"no layer at {self.layer}: run `make sam-build` first")

    def code(self, function: str) -> Path:
        path = self.build_dir / function
        if not (path / "functions" / "handlers").is_dir():
            raise SmokeFailure(f"no function code at {path}")
        return path


def run_handler(python: Path, artifact: Artifact, role: str, events: list, env: dict) -> dict:
    """Run one handler's module in a fresh process of the clean interpreter; its report."""
    function, module = HANDLERS[role]
    code = artifact.code(function)
    stdlib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    child_env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{code}:{artifact.layer}",  # /var/task, then /opt/python, as on Lambda
        "PYTHONDONTWRITEBYTECODE": "1",  # the artifact is read-only on Lambda
        "AWS_LAMBDA_FUNCTION_NAME": f"smoke-{role}",
        "POWERTOOLS_SERVICE_NAME": f"caterva-{role}",
        "LAMBDA_TASK_ROOT": str(code),
        **env,
    }
    spec = {"module": module, "events": events, "allowed": [str(code), str(artifact.layer), stdlib]}
    with tempfile.TemporaryDirectory(prefix="smoke-") as cwd:  # nothing of the checkout on sys.path
        proc = subprocess.run(
            [str(python), "-c", CHILD],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            env=child_env,
            cwd=cwd,
            timeout=300,
        )
    if proc.returncode != 0 or "@@SMOKE@@" not in proc.stdout:
        raise SmokeFailure(f"{role} handler failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    report = json.loads(proc.stdout.rsplit("@@SMOKE@@", 1)[1])
    if not report["built_at_init"]:
        raise SmokeFailure(f"{role}: clients and app were not built at import (Lambda's init phase)")
    if report["foreign"]:
        raise SmokeFailure(f"{role}: modules loaded from outside the artifact: {report['foreign'][:10]}")
    return report


# ------------------------------------------------------------------------------- checks


def _receive_one(sqs, url: str, deadline_s: float = 10) -> list[dict]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        if got.get("Messages"):
            return got["Messages"]
    raise SmokeFailure(f"nothing arrived on {url}")


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise SmokeFailure(what)


def smoke(build_dir: Path, python: str) -> list[tuple[str, dict]]:
    """Run the four handlers from the artifact against a moto server; (role, report) each."""
    import blosc2
    import boto3
    import numpy as np
    from moto.server import ThreadedMotoServer

    from infra.dispatch import lambda_records
    from infra.lambda_events import http_event
    from infra.local import free_port
    from infra.moto_patch import apply
    from infra.template import create_local_resources, local_plan

    artifact = Artifact(build_dir)
    apply()  # conditional PUTs atomic, as S3's
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    reports = []
    try:
        plan = local_plan(ROOT / "template.yaml", prefix="smoke", regions=("r1",))
        made = create_local_resources(plan, session=session, endpoint_url=endpoint)
        s3, sqs = session.client("s3", endpoint_url=endpoint), session.client("sqs", endpoint_url=endpoint)
        env = creds | {
            "CAT_ORIGIN_BUCKET": plan.origin_bucket,
            "CAT_CACHE_BUCKET": plan.cache_buckets["r1"],
            "CAT_INGEST_BUCKET": plan.ingest_bucket,
            "CAT_TOPIC_ARN": made["topic_arn"],
            "POWERTOOLS_METRICS_NAMESPACE": "CatervaSmoke",
        }
        with tempfile.TemporaryDirectory(prefix="smoke-venv-") as tmp:
            clean = clean_venv(python, Path(tmp) / "venv")
            values = np.random.default_rng(0).random((300, 400))  # 960 KB, incompressible

            # 1. ingest: the real S3 notification, plus an unreadable record
            s3.put_object(
                Bucket=plan.ingest_bucket,
                Key="smoke/dir 1/data.b2nd",
                Body=blosc2.asarray(values, chunks=(100, 200)).to_cframe(),
            )
            messages = _receive_one(sqs, made["ingest_queue_url"])
            records = lambda_records(
                messages, "arn:aws:sqs:us-east-1:123456789012:smoke-ingest-events", "us-east-1"
            )
            records.append({**records[0], "messageId": "bad-record", "body": "{not an S3 notification"})
            report = run_handler(clean, artifact, "ingest", [{"Records": records}], env)
            failures = report["answers"][0]["batchItemFailures"]
            _expect(failures == [{"itemIdentifier": "bad-record"}], f"ingest batchItemFailures: {failures}")
            reports.append(("ingest", report))

            # 2. sync: the SNS envelope the publish put on this region's queue
            messages = _receive_one(sqs, made["sync_queue_urls"]["r1"])
            _expect(json.loads(messages[0]["Body"])["Type"] == "Notification", "sync: not an SNS envelope")
            records = lambda_records(
                messages, "arn:aws:sqs:us-east-1:123456789012:smoke-sync-r1", "us-east-1"
            )
            report = run_handler(clean, artifact, "sync", [{"Records": records}], env)
            _expect(report["answers"][0] == {"batchItemFailures": []}, f"sync: {report['answers'][0]}")
            reports.append(("sync", report))

            # 3. api: roots, and a binary fetch
            fetch = http_event("/api/fetch/smoke/dir%201/data.b2nd", "slice_=10%3A20%2C5%3A9")
            report = run_handler(clean, artifact, "api", [http_event("/api/roots"), fetch], env)
            roots, got = report["answers"]
            _expect(roots["statusCode"] == 200 and "smoke" in json.loads(roots["body"]), f"roots: {roots}")
            _expect(got["statusCode"] == 200 and got["isBase64Encoded"] is True, f"fetch: {str(got)[:300]}")
            array = blosc2.ndarray_from_cframe(base64.b64decode(got["body"]))[:]
            _expect(np.array_equal(array, values[10:20, 5:9]), "fetch: decoded bytes differ from the data")
            reports.append(("api", report))

            # 4. compute: a slice of a lazy expression over the published manifest
            head = json.loads(
                s3.get_object(Bucket=plan.origin_bucket, Key="h/smoke/dir 1/data.b2nd.json")["Body"].read()
            )
            event = {
                "op": "slice",
                "expression": "x * 2 + 1",
                "operands": {"x": head["manifest"]},
                "key": [[0, 3, 1], [0, 4, 1]],
            }
            report = run_handler(clean, artifact, "compute", [event], env)
            answer = report["answers"][0]
            _expect(answer.get("status") == 200, f"compute: {answer}")
            result = blosc2.ndarray_from_cframe(base64.b64decode(answer["cframe"]))[:]
            _expect(np.array_equal(result, values[0:3, 0:4] * 2 + 1), "compute: wrong values")
            reports.append(("compute", report))

            # 5. stream: run.sh serving the app; the whole 960 KB array, past a 100 KB buffered limit
            reports.append(("stream", run_stream(clean, artifact, env, values)))
    finally:
        server.stop()
    return reports


def run_stream(python: Path, artifact: Artifact, env: dict, values) -> dict:
    """Start ``run.sh`` of the built StreamFunction; check one streamed fetch; its report."""
    import blosc2
    import httpx
    import numpy as np

    from infra.local import free_port

    code = artifact.build_dir / "StreamFunction"
    script = code / "run.sh"
    _expect(script.is_file() and os.access(script, os.X_OK), f"no executable run.sh in {code}")
    port = free_port()
    child_env = {
        "PATH": "/usr/bin:/bin",
        # run.sh puts the code (LAMBDA_TASK_ROOT) first; the layer is not at /opt/python here
        "PYTHONPATH": str(artifact.layer),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(code),
        "CAT_PYTHON": str(python),
        "AWS_LWA_PORT": str(port),
        "CAT_RESPONSE_LIMIT": "100000",
        "CAT_STREAM_LIMIT": "200000000",
        **{k: v for k, v in env.items() if k != "CAT_RESPONSE_LIMIT"},
    }
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="smoke-stream-") as cwd:
        proc = subprocess.Popen([str(script)], env=child_env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            while True:  # the adapter's readiness check
                try:
                    ready = httpx.get(f"{url}/api/limits", timeout=2)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None or time.perf_counter() - started > 60:
                        proc.kill()
                        output = proc.communicate()[0][-3000:]
                        raise SmokeFailure(f"stream: run.sh never became ready:\n{output}") from None
                    time.sleep(0.1)
            ready_s = time.perf_counter() - started
            _expect(ready.json().get("stream_limit") == 200_000_000, f"stream: limits {ready.text}")
            t1 = time.perf_counter()
            with httpx.stream("GET", f"{url}/api/fetch/smoke/dir%201/data.b2nd", timeout=60) as resp:
                pieces = list(resp.iter_raw())
            took = time.perf_counter() - t1
            body = b"".join(pieces)
            _expect(resp.status_code == 200, f"stream: fetch answered {resp.status_code} {body[:300]!r}")
            streamed = len(body) > 100_000 and len(pieces) > 1
            _expect(streamed, f"stream: {len(body)} B in {len(pieces)} piece(s)")
            _expect(np.array_equal(blosc2.ndarray_from_cframe(body)[:], values), "stream: wrong values")
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
    version = subprocess.run([str(python), "-V"], capture_output=True, text=True).stdout
    return {"import_s": ready_s, "invoke_s": [took], "python": version.split(maxsplit=1)[-1]}


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.artifact_smoke [--build-dir DIR] [--python PY]``; 0 when every check passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--python", help=f"interpreter for the clean venv (default: a python{RUNTIME})")
    args = parser.parse_args(argv)
    python = args.python or find_python()
    if python is None:
        print(
            f"artifact smoke: no python{RUNTIME} on this machine (PATH or ~/.pyenv); the layer's wheels "
            f"are built for {RUNTIME}, so the artifact cannot be run here",
            file=sys.stderr,
        )
        return 2
    try:
        reports = smoke(args.build_dir, python)
    except SmokeFailure as exc:
        print(f"artifact smoke FAILED: {exc}", file=sys.stderr)
        return 1
    version = reports[0][1]["python"].split()[0]
    print(f"artifact smoke: every handler ran from the built artifact alone (Python {version}, clean venv)")
    print(f"{'handler':<8} {'cold import (init)':>19} {'first invoke':>13}")
    for role, report in reports:
        print(f"{role:<8} {report['import_s']:>17.2f} s {report['invoke_s'][0]:>11.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

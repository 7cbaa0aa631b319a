"""The streaming front in template.yaml: REST API with response streaming -> StreamFunction.

StreamFunction runs the same FastAPI app as ApiFunction, under uvicorn (``run.sh``) behind
the AWS Lambda Web Adapter layer; the REST API invokes it with InvokeWithResponseStream.
The translated template is checked wire by wire (what SAM's transform produces is what
CloudFormation creates), and ``run.sh`` is started for real against the test stack's moto:
a 12 MB answer (past the 4.5 MB buffered limit) comes back streamed and byte-exact.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import blosc2
import httpx
import numpy as np
import pytest

from functions.engine.content import load_object
from infra.envfile import stack_env
from infra.local import StackConfig
from infra.template import load_template
from tests.test_template import TEMPLATE, Renderer, _env, _of_type, _translate

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "infra" / "lambda_build" / "run.sh"
#: Lambda's response streaming limit, bytes (the buffered one is 6 MB)
LAMBDA_STREAM_MAX = 200_000_000
#: Past a stream's first bytes, Lambda (and API Gateway past 10 MB) send at most 2 MB/s
STREAM_RATE = 2_000_000


@pytest.fixture(scope="module")
def origin() -> dict:
    return _translate({"Role": "origin"})


def _stream_integrations(cfn: dict) -> dict[str, dict]:
    (api,) = _of_type(cfn, "AWS::ApiGateway::RestApi").values()
    paths = api["Properties"]["Body"]["paths"]
    return {p: route["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"] for p, route in paths.items()}


def test_the_rest_api_streams_every_route_to_the_stream_function(origin):
    routes = _stream_integrations(origin)
    assert set(routes) == {"/", "/{proxy+}"}  # the whole protocol: a client needs one base URL
    for path, integration in routes.items():
        assert integration["type"] == "aws_proxy", path
        assert integration["responseTransferMode"] == "STREAM", path
        uri = integration["uri"]["Fn::Sub"]
        # InvokeWithResponseStream: the 2021-11-15 API and its own action, not /invocations
        assert "/2021-11-15/functions/${StreamFunction.Arn}/response-streaming-invocations" in uri, path
    (api,) = _of_type(origin, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert api["Properties"]["BinaryMediaTypes"] == ["*~1*"]  # uploads arrive base64-encoded
    perms = [p["Properties"] for p in _of_type(origin, "AWS::Lambda::Permission").values()
             if "StreamApi" in json.dumps(p["Properties"])]
    assert perms and all(p["FunctionName"] == {"Ref": "StreamFunction"} for p in perms)
    assert all(p["Principal"] == "apigateway.amazonaws.com" for p in perms)
    url = Renderer(origin, {})(origin["Outputs"]["StreamApiUrl"]["Value"])
    assert url == "https://<StreamApi>.execute-api.us-east-1.amazonaws.com/stream"
    (stage,) = _of_type(origin, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["StageName"] == "stream" and "AccessLogSetting" in stage["Properties"]


def test_the_stream_function_runs_the_app_under_the_web_adapter(origin):
    props = origin["Resources"]["StreamFunction"]["Properties"]
    env = Renderer(origin, {})(_env(origin, "StreamFunction"))
    assert props["Handler"] == "run.sh"
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"  # the adapter's wrapper starts run.sh
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    # the local stack streams up to what the template lets Lambda stream: one limit, one place
    assert int(env["CAT_STREAM_LIMIT"]) == StackConfig().stream_limit == LAMBDA_STREAM_MAX
    assert int(env["CAT_RESPONSE_LIMIT"]) == StackConfig().response_limit
    assert int(env["CAT_PAYLOAD_LIMIT"]) <= 4_500_000  # requests are not streamed: 6 MB events
    api_env = Renderer(origin, {})(_env(origin, "ApiFunction"))
    assert "CAT_STREAM_LIMIT" not in api_env  # Mangum buffers: the HTTP API front never streams
    timeout = Renderer(origin, {})(props["Timeout"])
    # 200 MB at 2 MB/s take 100 s; a streamed invocation may last 15 minutes at most
    assert LAMBDA_STREAM_MAX / STREAM_RATE < int(timeout) <= 900
    (layer_id,) = _of_type(origin, "AWS::Lambda::LayerVersion")
    assert props["Layers"][0] == {"Ref": layer_id}  # the dependencies, as every function has them
    assert Renderer(origin, {})(props["Layers"][1]) == "arn:aws:lambda:us-east-1:753240598075:layer:LambdaAdapterLayerX86:27"


def test_arm64_takes_the_adapter_built_for_it():
    cfn = _translate({"Role": "origin", "Architecture": "arm64"})
    layers = cfn["Resources"]["StreamFunction"]["Properties"]["Layers"]
    rendered = Renderer(cfn, {"Architecture": "arm64"})(layers[1])
    assert rendered.endswith(":layer:LambdaAdapterLayerArm64:27")


def test_the_streaming_front_can_be_left_out():
    cfn = _translate({"Role": "origin", "StreamedAnswers": "false"})
    gone = {"StreamFunction", "StreamApi", "StreamLogGroup", "StreamAccessLogGroup"}
    assert not gone & set(cfn["Resources"])
    assert not _of_type(cfn, "AWS::ApiGateway::RestApi")
    assert "StreamApiUrl" not in cfn["Outputs"] and "ApiUrl" in cfn["Outputs"]


def test_run_sh_is_built_into_the_stream_function():
    assert os.access(RUN_SH, os.X_OK)
    assert subprocess.run(["sh", "-n", str(RUN_SH)]).returncode == 0
    assert "-m functions.handlers.stream" in RUN_SH.read_text()
    makefile = (RUN_SH.parent / "Makefile").read_text()
    assert 'install -m 755 "$(HERE)run.sh" "$(ARTIFACTS_DIR)/run.sh"' in makefile


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def big_root(stack) -> tuple[str, np.ndarray]:
    root = f"stream-{uuid.uuid4().hex[:8]}"
    floats = np.random.default_rng(3).random((1500, 1000))  # 12 MB of incompressible doubles
    stack.regions[0].services.publisher.publish(root, "f.b2nd", load_object(blosc2.asarray(floats, chunks=(150, 1000))))
    return root, floats


@contextlib.contextmanager
def _run_sh(env: dict, tmp_path: Path):
    """run.sh as the adapter starts it; yields its URL once the readiness probe answers."""
    port = _free_port()
    env = {**os.environ, **env, "AWS_LWA_PORT": str(port), "CAT_PYTHON": sys.executable,
           "LAMBDA_TASK_ROOT": str(ROOT), "PYTHONPATH": ""}
    log_path = tmp_path / f"run-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([str(RUN_SH)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
            probe = load_template(TEMPLATE)["Resources"]["StreamFunction"]["Properties"]["Environment"][
                "Variables"]["AWS_LWA_READINESS_CHECK_PATH"]
            while True:  # what the adapter does before it relays any event
                try:
                    ready = httpx.get(f"{url}{probe}", timeout=2)
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.2)
            assert ready.status_code == 200, ready.text
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_the_readiness_probe_needs_no_storage(tmp_path):
    # S3 unreachable (nothing listens there): the probe still answers, data routes do not
    dead = f"http://127.0.0.1:{_free_port()}"
    env = {"AWS_ENDPOINT_URL": dead, "CAT_ORIGIN_BUCKET": "o", "CAT_CACHE_BUCKET": "c", "CAT_STREAM_LIMIT": "200000000"}
    with _run_sh(env, tmp_path) as url:
        assert httpx.get(f"{url}/api/limits", timeout=5).json()["stream_limit"] == 200_000_000
        assert httpx.get(f"{url}/api/roots", timeout=60).status_code >= 500


def test_run_sh_serves_streamed_answers(stack, big_root, tmp_path):
    """run.sh as the adapter starts it: the app on AWS_LWA_PORT, answers past 4.5 MB streamed."""
    root, floats = big_root
    env = {**stack_env(stack.ready_info()), "CAT_STREAM_LIMIT": str(LAMBDA_STREAM_MAX),
           "CAT_RESPONSE_LIMIT": "4500000", "CAT_PAYLOAD_LIMIT": "4500000"}
    with _run_sh(env, tmp_path) as url:
        limits = httpx.get(f"{url}/api/limits", timeout=5).json()
        assert limits["stream_limit"] == LAMBDA_STREAM_MAX and limits["response_limit"] == 4_500_000
        with httpx.stream("GET", f"{url}/api/fetch/{root}/f.b2nd", timeout=60) as resp:
            assert resp.status_code == 200, resp.read()
            assert int(resp.headers["content-length"]) > 4_500_000
            pieces = list(resp.iter_raw())
        assert len(pieces) > 1  # sent as it was assembled, not as one buffer
        body = b"".join(pieces)
        assert len(body) == int(resp.headers["content-length"])
        assert np.array_equal(blosc2.ndarray_from_cframe(body)[:], floats)

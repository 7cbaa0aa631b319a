"""template.yaml: SAM wiring, least privilege, cfn-lint, and the local stack derived from it.

The template is translated with aws-sam-translator (what CloudFormation's SAM transform
runs), conditions are applied for each Role, and the resulting CloudFormation is checked
resource by resource. The local plan (infra/template.py) is checked against the same
translation, so the template and the local stack cannot drift apart unnoticed.
"""

from __future__ import annotations

import ast
import copy
import importlib.metadata as md
import json
import re
import sys
import tomllib
import urllib.parse
from pathlib import Path

import boto3
import pytest
import yaml

from infra.template import (
    LocalPlan,
    TemplateDrift,
    create_local_resources,
    evaluate_conditions,
    load_template,
    local_plan,
    resolve_conditions,
)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
BUILD_DIR = ROOT / "infra" / "lambda_build"

STACK, ACCOUNT, REGION = "caterva-serverless", "123456789012", "us-east-1"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::StackName": STACK,
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::URLSuffix": "amazonaws.com",
}
SUB_PARAMS = {
    "Role": "subscriber",
    "OriginBucketName": "caterva-serverless-origin-123456789012-eu-west-1",
    "OriginTopicArn": "arn:aws:sns:eu-west-1:123456789012:caterva-serverless-changes",
    "UserPoolId": "eu-west-1_AbCdEf123",
    "UserPoolClientId": "abcdef0123456789",
}
# What only the API function reads: users (Cognito) and upload limits
API_ENV = {
    "CAT_COMPUTE_FUNCTION",
    "CAT_USER_POOL_ID",
    "CAT_USER_POOL_CLIENT_ID",
    "CAT_PAYLOAD_LIMIT",
    "CAT_MAX_UPLOAD",
    "CAT_USER_QUOTA",
    "CAT_CORS_ORIGINS",
}
FUNCTIONS = ("ApiFunction", "IngestFunction", "SyncFunction", "ComputeFunction", "StreamFunction")
# The two fronts run the same app: the buffered one (Mangum) and the streaming one (uvicorn
# under the Lambda Web Adapter, tests/test_template_stream.py)
FRONTS = ("ApiFunction", "StreamFunction")
# What the streaming function reads besides the API's: the adapter's settings and the stream limit
STREAM_ENV = {
    "CAT_STREAM_LIMIT",
    "AWS_LAMBDA_EXEC_WRAPPER",
    "AWS_LWA_INVOKE_MODE",
    "AWS_LWA_PORT",
    "AWS_LWA_READINESS_CHECK_PATH",
}
# Every variable the template sets must be one functions/settings.py reads (or Powertools').
POWERTOOLS_ENV = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_TRACE_DISABLED"}
COMMON_ENV = {
    "CAT_ORIGIN_BUCKET",
    "CAT_CACHE_BUCKET",
    "CAT_INGEST_BUCKET",
    "CAT_TOPIC_ARN",
    "CAT_RESPONSE_LIMIT",
    "CAT_LOG_LEVEL",
} | POWERTOOLS_ENV


class _ManagedPolicies:
    """Stands in for the IAM look-up SAM does for managed policy names (no AWS call)."""

    def load(self) -> dict[str, str]:
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
        }


def _translate(params: dict[str, str], sam: dict | None = None) -> dict:
    """SAM -> CloudFormation as the transform does it, then conditions applied for *params*."""
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(sam if sam is not None else load_template(TEMPLATE))
    # The translator wants S3 URIs where `sam build` + `sam package` would have put them.
    sam["Globals"]["Function"]["CodeUri"] = "s3://artifacts/functions.zip"
    for body in sam["Resources"].values():
        props = body.get("Properties", {})
        if "CodeUri" in props:
            props["CodeUri"] = "s3://artifacts/functions.zip"
        if "ContentUri" in props:
            props["ContentUri"] = "s3://artifacts/layer.zip"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        cfn = transform(sam, dict(params), _ManagedPolicies())
    return resolve_conditions(cfn, params)


@pytest.fixture(scope="module")
def origin() -> dict:
    return _translate({"Role": "origin"})


@pytest.fixture(scope="module")
def subscriber() -> dict:
    return _translate(SUB_PARAMS)


# ------------------------------------------------------------------------------ helpers


class Renderer:
    """Evaluates intrinsics to concrete strings for one stack (bucket names, ARNs...)."""

    def __init__(self, cfn: dict, params: dict[str, str]) -> None:
        self.res = cfn["Resources"]
        self.params = {n: str(p.get("Default", "")) for n, p in cfn["Parameters"].items()} | params

    def ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        body = self.res[name]
        props = body.get("Properties", {})
        if body["Type"] == "AWS::S3::Bucket":
            return self(props["BucketName"])
        if body["Type"] == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{self(props['TopicName'])}"
        if body["Type"] == "AWS::Lambda::Function" and "FunctionName" in props:
            return self(props["FunctionName"])
        if body["Type"] == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self(props['QueueName'])}"
        return f"<{name}>"

    def getatt(self, name: str, attr: str) -> str:
        body = self.res[name]
        if body["Type"] == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:aws:s3:::{self.ref(name)}"
        if body["Type"] == "AWS::Lambda::Function" and attr == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.ref(name)}"
        if body["Type"] == "AWS::SQS::Queue" and attr in ("Arn", "QueueName"):
            name = self(body["Properties"]["QueueName"])
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}" if attr == "Arn" else name
        return f"<{name}.{attr}>"

    def __call__(self, expr):
        if isinstance(expr, list):
            return [self(e) for e in expr]
        if not isinstance(expr, dict):
            return expr
        if len(expr) == 1:
            ((fn, arg),) = expr.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                return self.getatt(*arg)
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                values = {k: self(v) for k, v in variables.items()}

                def sub(m: re.Match) -> str:
                    key = m.group(1)
                    if key in values:
                        return values[key]
                    return self.getatt(*key.split(".", 1)) if "." in key else self.ref(key)

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
            if fn == "Fn::Select":
                return self(arg[1])[int(arg[0])]
            if fn == "Fn::Split":
                return self(arg[1]).split(arg[0])
            if fn == "Fn::Join":
                return arg[0].join(self(arg[1]))
        return {k: self(v) for k, v in expr.items()}


def _of_type(cfn: dict, kind: str) -> dict[str, dict]:
    return {lid: body for lid, body in cfn["Resources"].items() if body["Type"] == kind}


def _role_of(cfn: dict, fn: str) -> dict:
    role_id = cfn["Resources"][fn]["Properties"]["Role"]["Fn::GetAtt"][0]
    return cfn["Resources"][role_id]["Properties"]


def _statements(cfn: dict, fn: str) -> list[dict]:
    return [s for p in _role_of(cfn, fn).get("Policies", []) for s in p["PolicyDocument"]["Statement"]]


def _grants(cfn: dict, fn: str, params: dict[str, str]) -> set[tuple[str, str]]:
    """(action, resource) pairs a function's inline policies allow, rendered concretely."""
    render = Renderer(cfn, params)
    pairs = set()
    for st in _statements(cfn, fn):
        assert st["Effect"] == "Allow", st
        assert not {"NotAction", "NotResource", "NotPrincipal"} & st.keys(), st
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = render(st["Resource"])
        resources = [resources] if isinstance(resources, str) else resources
        pairs |= {(a, r) for a in actions for r in resources}
    return pairs


def _expected_grants(
    origin: str, cache: str, ingest: str, topic: str, compute_arn: str, staging: str, queues: dict
) -> dict:
    """What each handler's code calls, as IAM (action, resource) pairs.

    - S3Store.get / exists / presign_get -> s3:GetObject (HeadObject is authorised by it);
    - S3Store.put (chunks c/, manifests m/, heads h/, catalogs r/, feed entries f/, roots.json) -> s3:PutObject;
      the API also puts published frames of filled arrays (p/) and slot claims (w/, deleted
      once the array is published);
    - S3Store.list, and telling a missing key (404) from a forbidden one (403) -> s3:ListBucket;
    - SnsSink (change events) -> sns:Publish; the API's compute call -> lambda:InvokeFunction;
    - large uploads staged under _staging/ of *staging* (ingest bucket, or cache for subscribers):
      presigned PUT, then read and delete at commit;
    - Lambda's poller of an SQS event source, on the function's own queue (*queues*: function ->
      queue ARN): ReceiveMessage, DeleteMessage, GetQueueAttributes.
    """
    o, c, i = (f"arn:aws:s3:::{b}" for b in (origin, cache, ingest))
    read_origin = {("s3:GetObject", f"{o}/*"), ("s3:ListBucket", o)}
    publish = {("s3:PutObject", f"{o}/{p}") for p in ("c/*", "m/*", "h/*", "r/*", "f/*", "roots.json")}
    cache_rw = {("s3:GetObject", f"{c}/*"), ("s3:PutObject", f"{c}/*"), ("s3:ListBucket", c)}
    st = f"arn:aws:s3:::{staging}"
    stage = {(a, f"{st}/_staging/*") for a in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject")}
    stage.add(("s3:ListBucket", st))
    poll = {
        fn: {(a, arn) for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")}
        for fn, arn in queues.items()
    }
    grants = {
        "ApiFunction": read_origin
        | publish
        | {("s3:PutObject", f"{o}/p/*"), ("s3:PutObject", f"{o}/w/*"), ("s3:DeleteObject", f"{o}/w/*")}
        | cache_rw
        | stage
        | {("sns:Publish", topic), ("lambda:InvokeFunction", compute_arn)},
        "IngestFunction": {("s3:GetObject", f"{i}/*"), ("s3:ListBucket", i)}
        | read_origin
        | publish
        | {("sns:Publish", topic)}
        | poll.get("IngestFunction", set()),
        "SyncFunction": read_origin | cache_rw | poll["SyncFunction"],
        "ComputeFunction": read_origin | cache_rw,
    }
    grants["StreamFunction"] = grants["ApiFunction"]  # the same app behind the streaming front
    return grants


def _references(node) -> set[str]:
    """Logical ids (and parameters/pseudo-parameters) an expression refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)} - set(variables)
                found |= _references(variables)
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def _cycle(cfn: dict) -> list[str] | None:
    """A dependency cycle among resources (Ref, GetAtt, Sub, DependsOn), or None."""
    res = cfn["Resources"]
    edges = {}
    for lid, body in res.items():
        deps = _references(body.get("Properties", {}))
        depends_on = body.get("DependsOn", [])
        deps |= {depends_on} if isinstance(depends_on, str) else set(depends_on)
        edges[lid] = sorted(d for d in deps if d in res)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cyc := visit(nxt, [*path, node])):
                return cyc
        state[node] = 2
        return None

    for lid in res:
        if lid not in state and (cyc := visit(lid, [])):
            return cyc
    return None


def _polled(cfn: dict) -> dict[str, str]:
    """Function id -> the queue id its SQS event source mapping polls."""
    return {
        m["Properties"]["FunctionName"]["Ref"]: m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        for m in _of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
    }


def _env(cfn: dict, fn: str) -> dict:
    return cfn["Resources"][fn]["Properties"]["Environment"]["Variables"]


# -------------------------------------------------------------------------------- lint


def test_cfn_lint_clean():
    from cfnlint.api import lint_file

    matches = lint_file(TEMPLATE)
    serious = [m for m in matches if m.rule.id[0] in "EW"]
    assert not serious, "\n".join(str(m) for m in serious)


def test_template_loader_keeps_intrinsics():
    sam = load_template(TEMPLATE)
    assert sam["Transform"] == "AWS::Serverless-2016-10-31"
    assert sam["AWSTemplateFormatVersion"] == "2010-09-09"  # a string, not a date
    fn = sam["Resources"]["ApiFunction"]["Properties"]
    assert fn["Environment"]["Variables"]["CAT_COMPUTE_FUNCTION"] == {"Ref": "ComputeFunction"}
    statements = {st["Sid"]: st for st in fn["Policies"][0]["Statement"]}
    assert statements["InvokeCompute"]["Resource"] == {"Fn::GetAtt": ["ComputeFunction", "Arn"]}


# ----------------------------------------------------------------------------- wiring


def test_http_api_routes_to_api_function_only(origin):
    apis = _of_type(origin, "AWS::ApiGatewayV2::Api")
    assert list(apis) == ["HttpApi"]
    paths = apis["HttpApi"]["Properties"]["Body"]["paths"]
    assert set(paths) == {"/", "/{proxy+}"}
    for route in paths.values():
        integration = route["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
        assert "${ApiFunction.Arn}" in integration["uri"]["Fn::Sub"]
        assert integration["payloadFormatVersion"] == "2.0"  # what Mangum's HTTP API v2 adapter reads
    body = json.dumps(apis["HttpApi"]["Properties"]["Body"])
    assert not [f for f in FUNCTIONS if f != "ApiFunction" and f in body]
    stages = _of_type(origin, "AWS::ApiGatewayV2::Stage")
    assert [s["Properties"]["StageName"] for s in stages.values()] == ["$default"]
    assert all(s["Properties"].get("AutoDeploy") for s in stages.values())
    perms = [
        p["Properties"]
        for p in _of_type(origin, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com" and "HttpApi" in json.dumps(p["Properties"])
    ]
    assert perms and all(p["FunctionName"] == {"Ref": "ApiFunction"} for p in perms)
    url = Renderer(origin, {})(origin["Outputs"]["ApiUrl"]["Value"])
    assert url == "https://<HttpApi>.execute-api.us-east-1.amazonaws.com/"  # $default: no stage path


def test_ingest_bucket_notifies_the_ingest_queue(origin):
    bucket = origin["Resources"]["IngestBucket"]
    assert bucket["Properties"]["NotificationConfiguration"] == {
        "QueueConfigurations": [
            {"Queue": {"Fn::GetAtt": ["IngestQueue", "Arn"]}, "Event": "s3:ObjectCreated:*"}
        ]
    }
    # S3 checks it may send when the notification is put: the bucket comes after the policy.
    assert "IngestQueuePolicy" in bucket.get("DependsOn", [])
    policy = origin["Resources"]["IngestQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "IngestQueue"}]
    (st,) = policy["PolicyDocument"]["Statement"]
    render = Renderer(origin, {})
    assert st["Principal"] == {"Service": "s3.amazonaws.com"} and st["Action"] == "sqs:SendMessage"
    assert (
        render(st["Condition"]["ArnEquals"]["aws:SourceArn"])
        == f"arn:aws:s3:::{render({'Ref': 'IngestBucket'})}"
    )
    # Nothing invokes a function asynchronously any more (events would be lost after 2 retries).
    assert not [
        p
        for p in _of_type(origin, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] != "apigateway.amazonaws.com"
    ]
    others = [lid for lid, b in _of_type(origin, "AWS::S3::Bucket").items() if lid != "IngestBucket"]
    assert not [
        lid for lid in others if "NotificationConfiguration" in origin["Resources"][lid]["Properties"]
    ]


@pytest.mark.parametrize("which", ["origin", "subscriber"])
def test_every_event_source_is_a_queue_with_a_dlq_and_partial_batch_failures(which, request):
    """No event lost: each SQS event source drains a queue whose redrive policy ends in a DLQ."""
    cfn = request.getfixturevalue(which)
    res = cfn["Resources"]
    mappings = _of_type(cfn, "AWS::Lambda::EventSourceMapping")
    expected = {"SyncFunction": "SyncQueue"} | (
        {"IngestFunction": "IngestQueue"} if which == "origin" else {}
    )
    assert _polled(cfn) == expected
    for mapping in mappings.values():
        props = mapping["Properties"]
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        fn, queue_id = props["FunctionName"]["Ref"], props["EventSourceArn"]["Fn::GetAtt"][0]
        queue = res[queue_id]["Properties"]
        redrive = queue["RedrivePolicy"]
        dlq_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert res[dlq_id]["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" not in res[dlq_id]["Properties"]
        assert 1 < redrive["maxReceiveCount"] <= 10
        # 6x the function's timeout (AWS's advice), so a record in work is never handed out twice
        assert queue["VisibilityTimeout"] >= 6 * res[fn]["Properties"]["Timeout"], queue_id
        # a DLQ keeps what it gets for the longest SQS allows, longer than the queue itself
        assert res[dlq_id]["Properties"]["MessageRetentionPeriod"] == 1209600
        assert queue.get("SqsManagedSseEnabled") and res[dlq_id]["Properties"].get("SqsManagedSseEnabled")
        alarms = [
            a["Properties"]
            for a in _of_type(cfn, "AWS::CloudWatch::Alarm").values()
            if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
            in a["Properties"].get("Dimensions", [])
        ]
        assert len(alarms) == 1 and alarms[0]["MetricName"] == "ApproximateNumberOfMessagesVisible", dlq_id
        assert alarms[0]["Threshold"] == 0 and alarms[0]["ComparisonOperator"] == "GreaterThanThreshold"
    # Event sources are explicit mappings: a SAM SQS event would attach the managed policy
    # AWSLambdaSQSQueueExecutionRole (polling on every queue), SNS/S3 events are asynchronous.
    sam = load_template(TEMPLATE)["Resources"]
    kinds = {ev["Type"] for lid in FUNCTIONS for ev in (sam[lid]["Properties"].get("Events") or {}).values()}
    assert kinds == {"HttpApi", "Api"}  # the two API fronts; nothing else is pushed


@pytest.mark.parametrize("which", ["origin", "subscriber"])
def test_no_circular_dependency(which, request):
    assert _cycle(request.getfixturevalue(which)) is None


def test_topic_feeds_the_sync_queue(origin):
    subs = _of_type(origin, "AWS::SNS::Subscription")
    assert len(subs) == 1
    (sub,) = (s["Properties"] for s in subs.values())
    assert sub["Protocol"] == "sqs"
    assert sub["Endpoint"] == {"Fn::GetAtt": ["SyncQueue", "Arn"]}
    assert sub["TopicArn"] == {"Ref": "ChangeTopic"}
    assert sub["RawMessageDelivery"] is False  # the handler unwraps the SNS envelope
    assert Renderer(origin, {})(sub["Region"]) == REGION
    policy = origin["Resources"]["SyncQueuePolicy"]["Properties"]
    (st,) = policy["PolicyDocument"]["Statement"]
    assert st["Principal"] == {"Service": "sns.amazonaws.com"} and st["Action"] == "sqs:SendMessage"
    assert st["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "ChangeTopic"}


def test_topic_policy_is_account_only(origin):
    policy = origin["Resources"]["ChangeTopicPolicy"]["Properties"]["PolicyDocument"]
    render = Renderer(origin, {})
    account_root = f"arn:aws:iam::{ACCOUNT}:root"
    for st in policy["Statement"]:
        if st["Effect"] == "Allow":
            assert render(st["Principal"]) == {"AWS": account_root}, st
            assert render(st["Resource"]) == render({"Ref": "ChangeTopic"})
    allowed = set()
    for st in policy["Statement"]:
        if st["Effect"] == "Allow":
            allowed |= {st["Action"]} if isinstance(st["Action"], str) else set(st["Action"])
    assert "sns:Publish" in allowed and "sns:Subscribe" in allowed
    assert not [a for a in allowed if "*" in a]


def test_buckets_are_private_and_encrypted(origin):
    buckets = _of_type(origin, "AWS::S3::Bucket")
    assert set(buckets) == {"OriginBucket", "CacheBucket", "IngestBucket"}
    for lid, body in buckets.items():
        props = body["Properties"]
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", lid
        assert all(
            props["PublicAccessBlockConfiguration"][k] is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        ), lid
        assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}, lid
        # Names come from stack + account + region; the longest region keeps them legal.
        long_name = Renderer(origin, {})(props["BucketName"]).replace(REGION, "ap-southeast-2")
        assert re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", long_name), long_name


def test_functions_runtime_layer_logs(origin):
    fns = _of_type(origin, "AWS::Lambda::Function")
    assert set(fns) == set(FUNCTIONS)
    layer_id, layer = next(iter(_of_type(origin, "AWS::Lambda::LayerVersion").items()))
    render = Renderer(origin, {})
    for lid, body in fns.items():
        props = body["Properties"]
        assert props["Runtime"] in layer["Properties"]["CompatibleRuntimes"], lid
        assert props["Architectures"] == [{"Ref": "Architecture"}], lid
        assert props["Layers"][0] == {"Ref": layer_id} and len(props["Layers"]) == (2 if lid == "StreamFunction" else 1), lid
        assert props["TracingConfig"] == {"Mode": {"Ref": "Tracing"}}, lid
        group = origin["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert group["RetentionInDays"] == 30, lid
        assert render(group["LogGroupName"]) == f"/aws/lambda/{render(props['FunctionName'])}", lid
    assert layer["Properties"]["CompatibleArchitectures"] == [{"Ref": "Architecture"}]
    assert fns["ApiFunction"]["Properties"]["MemorySize"] == 1024
    assert fns["ComputeFunction"]["Properties"]["MemorySize"] == 1024
    # API Gateway HTTP APIs give up after 30 s; the API must answer (even an error) before.
    assert fns["ApiFunction"]["Properties"]["Timeout"] <= 29
    assert fns["ComputeFunction"]["Properties"]["Timeout"] < fns["ApiFunction"]["Properties"]["Timeout"]


def test_handlers_exist():
    sam = load_template(TEMPLATE)
    for lid in FUNCTIONS:
        handler = sam["Resources"][lid]["Properties"]["Handler"]
        if handler.endswith(".sh"):  # a script the Lambda Web Adapter runs: test_template_stream.py
            continue
        module, _, attr = handler.rpartition(".")
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        assert path.is_file(), f"{lid}: {handler} -> {path.relative_to(ROOT)} does not exist"
        tree = ast.parse(path.read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        names |= {
            t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        assert attr in names, f"{lid}: {path.relative_to(ROOT)} defines no top-level {attr!r}"


def test_environment_matches_settings(origin):
    settings_src = (ROOT / "functions" / "settings.py").read_text()
    read_by_settings = set(re.findall(r"\"(CAT_[A-Z_]+)\"", settings_src))
    render = Renderer(origin, {})
    names = {
        lid: render(origin["Resources"][lid]["Properties"]["BucketName"])
        for lid in ("OriginBucket", "CacheBucket", "IngestBucket")
    }
    for lid in FUNCTIONS:
        env = _env(origin, lid)
        expected = COMMON_ENV | (API_ENV if lid in FRONTS else set()) | (STREAM_ENV if lid == "StreamFunction" else set())
        assert set(env) == expected, lid
        assert {k for k in env if k.startswith("CAT_")} <= read_by_settings, lid
        values = render(env)
        assert values["CAT_ORIGIN_BUCKET"] == names["OriginBucket"]
        assert values["CAT_CACHE_BUCKET"] == names["CacheBucket"]
        # Spelled out in the template to avoid a cycle: it must still name the real bucket.
        assert values["CAT_INGEST_BUCKET"] == names["IngestBucket"]
        assert values["CAT_TOPIC_ARN"] == render({"Ref": "ChangeTopic"})
        assert values["CAT_RESPONSE_LIMIT"] == "4500000"
        assert values["POWERTOOLS_METRICS_NAMESPACE"] == "CatervaServerless"
    assert render(_env(origin, "ApiFunction")["CAT_COMPUTE_FUNCTION"]) == render({"Ref": "ComputeFunction"})


# ------------------------------------------------------------------------ least privilege


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_origin_policies_are_exact(origin, fn):
    render = Renderer(origin, {})
    bucket = {lid: render({"Ref": lid}) for lid in ("OriginBucket", "CacheBucket", "IngestBucket")}
    expected = _expected_grants(
        bucket["OriginBucket"],
        bucket["CacheBucket"],
        bucket["IngestBucket"],
        render({"Ref": "ChangeTopic"}),
        render({"Fn::GetAtt": ["ComputeFunction", "Arn"]}),
        bucket["IngestBucket"],
        {f: render({"Fn::GetAtt": [q, "Arn"]}) for f, q in _polled(origin).items()},
    )
    assert _grants(origin, fn, {}) == expected[fn]


@pytest.mark.parametrize("fn", ["ApiFunction", "SyncFunction", "ComputeFunction", "StreamFunction"])
def test_subscriber_policies_are_exact(subscriber, fn):
    render = Renderer(subscriber, SUB_PARAMS)
    expected = _expected_grants(
        SUB_PARAMS["OriginBucketName"],
        render({"Ref": "CacheBucket"}),
        "-",
        SUB_PARAMS["OriginTopicArn"],
        render({"Fn::GetAtt": ["ComputeFunction", "Arn"]}),
        render({"Ref": "CacheBucket"}),
        {f: render({"Fn::GetAtt": [q, "Arn"]}) for f, q in _polled(subscriber).items()},
    )
    assert _grants(subscriber, fn, SUB_PARAMS) == expected[fn]


@pytest.mark.parametrize("which", ["origin", "subscriber"])
def test_no_wildcards_and_only_basic_managed_policies(which, request):
    cfn = request.getfixturevalue(which)
    for fn in _of_type(cfn, "AWS::Lambda::Function"):
        for st in _statements(cfn, fn):
            actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
            assert not [a for a in actions if "*" in a], (fn, st)
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            assert "*" not in resources, (fn, st)
        # Logs (basic execution) and X-Ray only: neither grants anything on S3, SNS or Lambda.
        assert sorted(_role_of(cfn, fn)["ManagedPolicyArns"]) == sorted(_ManagedPolicies().load().values())


# boto3 operations -> the IAM action that authorises them. A name appearing in functions/
# (as a call or as the operation string S3Store passes to getattr) must be granted.
_BOTO_TO_IAM = {
    "get_object": "s3:GetObject",
    "head_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "upload_fileobj": "s3:PutObject",
    "copy_object": "s3:PutObject",
    "delete_object": "s3:DeleteObject",
    "delete_objects": "s3:DeleteObject",
    "list_objects_v2": "s3:ListBucket",
    "list_objects": "s3:ListBucket",
    "publish": "sns:Publish",
    "invoke": "lambda:InvokeFunction",
}
# Operations the code can do but no Lambda path does, with the reason.
_NOT_ON_A_LAMBDA_PATH = {
    # S3Store.delete completes the storage port (tests, tools); deleting a dataset writes a
    # tombstone head (PutObject), it never deletes objects.
    "delete_object": "S3Store.delete",
}


def test_policies_cover_what_the_code_calls(origin):
    used = set()
    for path in (ROOT / "functions").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                used.add(node.value)
    needed = {_BOTO_TO_IAM[op] for op in used & _BOTO_TO_IAM.keys() if op not in _NOT_ON_A_LAMBDA_PATH}
    granted = {a for fn in FUNCTIONS for a, _ in _grants(origin, fn, {})}
    assert needed <= granted, f"code calls {sorted(needed - granted)} but no function is granted it"


# --------------------------------------------------------------------------- subscriber


def test_subscriber_follows_the_origin(subscriber):
    res = subscriber["Resources"]
    gone = {
        "OriginBucket",
        "IngestBucket",
        "ChangeTopic",
        "ChangeTopicPolicy",
        "IngestFunction",
        "IngestFunctionRole",
        "IngestLogGroup",
        "IngestQueue",
        "IngestDeadLetterQueue",
        "IngestQueuePolicy",
        "IngestEvents",
        "IngestDeadLetterAlarm",
        "IngestThrottleAlarm",
    }
    assert not gone & set(res)
    assert set(_of_type(subscriber, "AWS::S3::Bucket")) == {"CacheBucket"}
    assert not _of_type(subscriber, "AWS::SNS::Topic")
    assert set(_of_type(subscriber, "AWS::Lambda::Function")) == set(FUNCTIONS) - {"IngestFunction"}
    render = Renderer(subscriber, SUB_PARAMS)
    (sub,) = (s["Properties"] for s in _of_type(subscriber, "AWS::SNS::Subscription").values())
    assert sub["TopicArn"] == {"Ref": "OriginTopicArn"}
    assert sub["Endpoint"] == {"Fn::GetAtt": ["SyncQueue", "Arn"]}  # the queue is in this region
    assert render(sub["Region"]) == "eu-west-1"  # created in the topic's region
    (st,) = res["SyncQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert render(st["Condition"]["ArnEquals"]["aws:SourceArn"]) == SUB_PARAMS["OriginTopicArn"]
    for fn in ("ApiFunction", "SyncFunction", "ComputeFunction"):
        env = render(_env(subscriber, fn))
        assert env["CAT_ORIGIN_BUCKET"] == SUB_PARAMS["OriginBucketName"]
        assert env["CAT_TOPIC_ARN"] == SUB_PARAMS["OriginTopicArn"]
        assert env["CAT_INGEST_BUCKET"] == ""
    outputs = subscriber["Outputs"]
    assert set(outputs) == {
        "ApiUrl",
        "StreamApiUrl",
        "OriginBucketName",
        "CacheBucketName",
        "FollowedTopicArn",
        "SyncDeadLetterQueueUrl",
        "Role",
    }
    assert render(outputs["OriginBucketName"]["Value"]) == SUB_PARAMS["OriginBucketName"]
    assert render(outputs["Role"]["Value"]) == "subscriber"


def test_origin_outputs(origin):
    assert set(origin["Outputs"]) == {
        "ApiUrl",
        "StreamApiUrl",
        "OriginBucketName",
        "CacheBucketName",
        "IngestBucketName",
        "ChangeTopicArn",
        "UserPoolId",
        "UserPoolClientId",
        "IngestDeadLetterQueueUrl",
        "SyncDeadLetterQueueUrl",
        "Role",
    }


@pytest.mark.parametrize(
    ("params", "ok"),
    [
        ({"Role": "origin"}, True),
        (SUB_PARAMS, True),
        ({"Role": "subscriber"}, False),
        ({"Role": "subscriber", "OriginBucketName": SUB_PARAMS["OriginBucketName"]}, False),
        ({k: v for k, v in SUB_PARAMS.items() if k != "UserPoolClientId"}, False),
    ],
)
def test_rules_demand_origin_params_for_subscribers(params, ok):
    sam = load_template(TEMPLATE)
    # Evaluate each rule's assertions as conditions (same grammar) for these parameters.
    for name, rule in sam["Rules"].items():
        conds = {"applies": rule["RuleCondition"]}
        conds |= {f"a{i}": a["Assert"] for i, a in enumerate(rule["Assertions"])}
        result = evaluate_conditions({"Parameters": sam["Parameters"], "Conditions": conds}, params)
        passed = not result.pop("applies") or all(result.values())
        assert passed is ok, (name, params)


# ------------------------------------------------------------------------------- build


def test_makefile_has_a_target_per_built_resource():
    sam = load_template(TEMPLATE)
    makefile = (BUILD_DIR / "Makefile").read_text()
    code_uri = sam["Globals"]["Function"]["CodeUri"]
    for lid, body in sam["Resources"].items():
        if body.get("Metadata", {}).get("BuildMethod") != "makefile":
            continue
        uri = body["Properties"].get("CodeUri") or body["Properties"].get("ContentUri") or code_uri
        assert (ROOT / uri / "Makefile").is_file(), lid
        assert re.search(rf"^(build-\S+ )*build-{lid}\b.*:", makefile, re.M), f"no build-{lid} target"


def _closure(names: set[str]) -> set[str]:
    """Distribution names needed by *names* (as installed in this environment), extras ignored."""
    norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()  # noqa: E731
    todo, seen = [norm(n) for n in names], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        todo += [norm(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r]
    return seen


def _optional_imports(tree: ast.AST) -> list[ast.AST]:
    """Imports guarded by ``try: ... except ImportError`` (the code runs without them)."""
    guarded = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        caught = set()
        for handler in node.handlers:
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught |= {t.id for t in types if isinstance(t, ast.Name)}
        if caught & {"ImportError", "ModuleNotFoundError"}:
            guarded += [
                n for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom)
            ]
    return guarded


def test_layer_requirements_cover_imports_and_match_pyproject():
    from packaging.requirements import Requirement

    reqs = [
        Requirement(line)
        for line in (BUILD_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    provided = _closure({r.name for r in reqs})
    dists_of = md.packages_distributions()
    missing = set()
    for pkg in ("functions", "catclient"):
        for path in (ROOT / pkg).rglob("*.py"):
            tree = ast.parse(path.read_text())
            optional = {id(n) for n in _optional_imports(tree)}
            for node in ast.walk(tree):
                if id(node) in optional:
                    continue
                if isinstance(node, ast.Import):
                    tops = {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    tops = {node.module.split(".")[0]}
                else:
                    continue
                for top in tops - set(sys.stdlib_module_names) - {"functions", "catclient"}:
                    dists = {re.sub(r"[-_.]+", "-", d).lower() for d in dists_of.get(top, [top])}
                    if not dists & provided:
                        missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported but not in the layer: {sorted(missing)}"
    # The layer's pins must be versions pyproject.toml allows.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [Requirement(s) for s in project["dependencies"]]
    specs += [Requirement(s) for group in project["optional-dependencies"].values() for s in group]
    for req in reqs:
        (pin,) = [s.version for s in req.specifier if s.operator == "=="]
        for spec in specs:
            if spec.name.lower() == req.name.lower():
                assert spec.specifier.contains(pin, prereleases=True), f"{req} vs pyproject {spec}"


# ------------------------------------------------------------------- local plan (drift)


def test_local_plan_names():
    plan = local_plan(TEMPLATE, prefix="cat-local", regions=("r1", "r2"))
    assert (plan.origin_bucket, plan.ingest_bucket, plan.topic_name) == (
        "cat-local-origin",
        "cat-local-ingest",
        "cat-local-changes",
    )
    assert plan.cache_buckets == {"r1": "cat-local-cache-r1", "r2": "cat-local-cache-r2"}
    assert plan.sync_queues == {"r1": "cat-local-sync-r1", "r2": "cat-local-sync-r2"}
    assert plan.ingest_queue == "cat-local-ingest-events"
    assert plan.compute_function == "cat-local-compute"
    assert plan.ingest_events == ("s3:ObjectCreated:*",)
    assert plan.handlers == {
        "api": "functions.handlers.api.handler",
        "ingest": "functions.handlers.ingest.handler",
        "sync": "functions.handlers.sync.handler",
        "compute": "functions.handlers.compute.handler",
        "stream": "run.sh",
    }


def test_local_plan_matches_the_translated_template(origin):
    """What CloudFormation would create (after SAM) is what the local plan stands in for."""
    plan = local_plan(TEMPLATE, regions=("r1", "r2", "r3"))
    res = origin["Resources"]
    fns = _of_type(origin, "AWS::Lambda::Function")
    # Buckets: one origin, one ingest, and the cache (one per region locally).
    assert set(_of_type(origin, "AWS::S3::Bucket")) == {"OriginBucket", "IngestBucket", "CacheBucket"}
    assert len(set(plan.cache_buckets.values())) == 3
    for lid, name in (("OriginBucket", plan.origin_bucket), ("IngestBucket", plan.ingest_bucket)):
        props = res[lid]["Properties"]
        assert plan.bucket_properties[name] == {
            k: props[k] for k in ("BucketEncryption", "PublicAccessBlockConfiguration", "OwnershipControls")
        }
    # Topic and its one subscriber, a queue (-> one queue per region, delivering to the sync handler).
    assert len(_of_type(origin, "AWS::SNS::Topic")) == 1
    (sub,) = (s["Properties"] for s in _of_type(origin, "AWS::SNS::Subscription").values())
    sync_queue = sub["Endpoint"]["Fn::GetAtt"][0]
    assert set(plan.sync_queues) == {"r1", "r2", "r3"}
    polled = {q: fn for fn, q in _polled(origin).items()}
    render = Renderer(origin, {})
    assert plan.handlers["sync"] == fns[polled[sync_queue]]["Properties"]["Handler"]
    # The one bucket notification (-> the ingest queue, delivering to the ingest handler).
    notifications = [
        (lid, cfg)
        for lid, b in _of_type(origin, "AWS::S3::Bucket").items()
        for cfg in b["Properties"].get("NotificationConfiguration", {}).get("QueueConfigurations", [])
    ]
    assert len(notifications) == 1
    ((bucket_id, cfg),) = notifications
    assert bucket_id == "IngestBucket"
    assert plan.ingest_events == (cfg["Event"],)
    ingest_queue = cfg["Queue"]["Fn::GetAtt"][0]
    assert plan.handlers["ingest"] == fns[polled[ingest_queue]]["Properties"]["Handler"]
    # Each queue's DLQ and redrive count (stack name -> local prefix).
    for queue_id, local in [
        (ingest_queue, plan.ingest_queue),
        *((sync_queue, q) for q in plan.sync_queues.values()),
    ]:
        redrive = res[queue_id]["Properties"]["RedrivePolicy"]
        dlq = render({"Fn::GetAtt": [redrive["deadLetterTargetArn"]["Fn::GetAtt"][0], "QueueName"]})
        assert plan.dead_letter_queues[local].startswith(dlq.replace(STACK, "cat-local")), local
        assert plan.max_receive_counts[local] == redrive["maxReceiveCount"]
    # The API's function and the compute function it invokes.
    api_uri = res["HttpApi"]["Properties"]["Body"]["paths"]["/"]["x-amazon-apigateway-any-method"][
        "x-amazon-apigateway-integration"
    ]["uri"]["Fn::Sub"]
    api_id = re.search(r"\$\{(\w+)\.Arn\}", api_uri).group(1)
    assert plan.handlers["api"] == fns[api_id]["Properties"]["Handler"]
    compute_id = _env(origin, api_id)["CAT_COMPUTE_FUNCTION"]["Ref"]
    assert plan.handlers["compute"] == fns[compute_id]["Properties"]["Handler"]
    assert plan.handlers["stream"] == fns["StreamFunction"]["Properties"]["Handler"]
    assert set(fns) == {api_id, compute_id, polled[sync_queue], polled[ingest_queue], "StreamFunction"}


def _mutated(tmp_path: Path, change) -> Path:
    sam = load_template(TEMPLATE)
    change(sam["Resources"])
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(sam, sort_keys=False))
    return path


def _add(lid, body):
    return lambda res: res.__setitem__(lid, body)


_DRIFTS = {
    "extra bucket": _add("ArchiveBucket", {"Type": "AWS::S3::Bucket", "Properties": {}}),
    "queue": _add("DeadLetters", {"Type": "AWS::SQS::Queue", "Properties": {}}),
    "table": _add("Locks", {"Type": "AWS::DynamoDB::Table", "Properties": {}}),
    "second topic": _add("OtherTopic", {"Type": "AWS::SNS::Topic", "Properties": {}}),
    "ingest polls the sync queue": lambda res: res["IngestEvents"]["Properties"].__setitem__(
        "EventSourceArn", {"Fn::GetAtt": ["SyncQueue", "Arn"]}
    ),
    "sync unsubscribed": lambda res: res.pop("SyncEvents"),
    "no dead-letter queue": lambda res: res["IngestQueue"]["Properties"].pop("RedrivePolicy"),
    "no partial batch failures": lambda res: res["SyncEvents"]["Properties"].pop("FunctionResponseTypes"),
    "lambda notification": lambda res: res["IngestBucket"]["Properties"][
        "NotificationConfiguration"
    ].__setitem__(
        "LambdaConfigurations",
        [{"Event": "s3:ObjectCreated:*", "Function": {"Fn::GetAtt": ["IngestFunction", "Arn"]}}],
    ),
    "sns event": lambda res: res["SyncFunction"]["Properties"].__setitem__(
        "Events", {"Changes": {"Type": "SNS", "Properties": {"Topic": {"Ref": "ChangeTopic"}}}}
    ),
    "schedule event": lambda res: (
        res["SyncFunction"]["Properties"]
        .setdefault("Events", {})
        .__setitem__("Nightly", {"Type": "Schedule", "Properties": {"Schedule": "rate(1 day)"}})
    ),
    "no ingest bucket": lambda res: res.pop("IngestBucket"),
}


@pytest.mark.parametrize("drift", sorted(_DRIFTS))
def test_local_plan_refuses_drift(tmp_path, drift):
    with pytest.raises(TemplateDrift):
        local_plan(_mutated(tmp_path, _DRIFTS[drift]))


def test_local_plan_follows_template_changes(tmp_path):
    def change(res):
        (cfg,) = res["IngestBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
        cfg["Event"] = "s3:ObjectCreated:Put"
        cfg["Filter"] = {"S3Key": {"Rules": [{"Name": "suffix", "Value": ".b2nd"}]}}
        res["IngestQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = 3
        res["CacheBucket"]["Properties"]["BucketName"] = {
            "Fn::Sub": "${AWS::StackName}-regional-${AWS::Region}"
        }

    plan = local_plan(_mutated(tmp_path, change), prefix="p", regions=("a",))
    assert plan.ingest_events == ("s3:ObjectCreated:Put",)
    assert plan.max_receive_counts[plan.ingest_queue] == 3
    assert plan.ingest_filter == {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".b2nd"}]}}
    assert plan.cache_buckets == {"a": "p-regional-a"}


# ------------------------------------------------------------------ local resources (moto)


@pytest.fixture
def moto_clients(monkeypatch):
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield {svc: boto3.client(svc, region_name=REGION) for svc in ("s3", "sns", "sqs")}


def _receive(sqs, url: str) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])


def test_create_local_resources(moto_clients):
    s3, sns, sqs = moto_clients["s3"], moto_clients["sns"], moto_clients["sqs"]
    plan: LocalPlan = local_plan(TEMPLATE, prefix="t", regions=("r1", "r2"))
    made = create_local_resources(plan, **moto_clients)
    again = create_local_resources(plan, **moto_clients)  # idempotent: a restart reuses everything
    assert made == again

    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert buckets == {plan.origin_bucket, plan.ingest_bucket, *plan.cache_buckets.values()}
    for name in buckets:
        enc = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert all(s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"].values())

    assert made["topic_arn"].endswith(f":{plan.topic_name}")
    subs = sns.list_subscriptions_by_topic(TopicArn=made["topic_arn"])["Subscriptions"]
    assert len(subs) == 2 and {s["Protocol"] for s in subs} == {"sqs"}
    for arn in made["subscription_arns"].values():
        assert (
            sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["RawMessageDelivery"]
            == "false"
        )
    # Every event queue has its dead-letter queue, with the template's redrive count.
    assert set(made["dead_letter_queue_urls"]) == {plan.ingest_queue, *plan.sync_queues.values()}
    for queue, dlq_url in made["dead_letter_queue_urls"].items():
        url = made["queue_urls"][queue]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        redrive = json.loads(attrs["RedrivePolicy"])
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]
        assert redrive["deadLetterTargetArn"] == dlq_arn["QueueArn"]
        assert int(redrive["maxReceiveCount"]) == plan.max_receive_counts[queue]
    notif = s3.get_bucket_notification_configuration(Bucket=plan.ingest_bucket)["QueueConfigurations"]
    assert [n["Events"] for n in notif] == [["s3:ObjectCreated:*"]]
    assert notif[0]["QueueArn"].endswith(f":{plan.ingest_queue}")

    # A change event reaches every region's sync queue as an SNS envelope (as Lambda's Sns record).
    event = {"type": "published", "root": "example", "path": "a.b2nd", "version": 1}
    sns.publish(
        TopicArn=made["topic_arn"],
        Message=json.dumps(event),
        MessageAttributes={
            "type": {"DataType": "String", "StringValue": "published"},
            "root": {"DataType": "String", "StringValue": "example"},
        },
    )
    for label, url in made["sync_queue_urls"].items():
        (msg,) = _receive(sqs, url)
        envelope = json.loads(msg["Body"])
        assert envelope["Type"] == "Notification", label
        assert envelope["TopicArn"] == made["topic_arn"]
        assert json.loads(envelope["Message"]) == event
        assert envelope["MessageAttributes"]["root"] == {"Type": "String", "Value": "example"}

    # A drop into the ingest bucket reaches the ingest queue as an S3 event (key URL-encoded).
    key = "example/dir 1/a+b.b2nd"
    s3.put_object(Bucket=plan.ingest_bucket, Key=key, Body=b"data")
    (msg,) = _receive(sqs, made["ingest_queue_url"])  # the s3:TestEvent was consumed at set-up
    (record,) = json.loads(msg["Body"])["Records"]
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == plan.ingest_bucket
    assert urllib.parse.unquote_plus(record["s3"]["object"]["key"]) == key
    # Nothing leaks into queues that should not get it.
    assert not _receive(sqs, made["ingest_queue_url"])
    assert not [u for u in made["sync_queue_urls"].values() if _receive(sqs, u)]

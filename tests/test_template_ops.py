"""template.yaml, operations: limits, CORS, alarms, access logs, data kept (versioning, lifecycle).

Each test renders the SAM translation (tests/test_template.py's helpers) for the parameters
that switch a feature on, and checks what CloudFormation would create.
"""

from __future__ import annotations

import base64
import json

import pytest

from functions.settings import Settings
from infra.template import load_template
from tests.test_template import FUNCTIONS, SUB_PARAMS, TEMPLATE, Renderer, _env, _of_type, _translate

ORIGINS = "https://app.example.org,http://localhost:8000"


@pytest.fixture(scope="module")
def origin() -> dict:
    return _translate({"Role": "origin"})


@pytest.fixture(scope="module")
def tuned() -> dict:
    """An origin stack with every optional feature switched on."""
    return _translate(
        {
            "Role": "origin",
            "CorsOrigins": ORIGINS,
            "IngestReservedConcurrency": "8",
            "ComputeReservedConcurrency": "50",
            "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops",
        }
    )


def _stage(cfn: dict) -> dict:
    (stage,) = _of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
    return stage["Properties"]


# ------------------------------------------------------------------------------ limits


def test_reserved_concurrency_parameters(origin, tuned):
    params = load_template(TEMPLATE)["Parameters"]
    for name in ("IngestReservedConcurrency", "ComputeReservedConcurrency", "IngestMaxConcurrency"):
        assert params[name]["Type"] == "Number", name
    fns = _of_type(tuned, "AWS::Lambda::Function")
    assert fns["IngestFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Ref": "IngestReservedConcurrency"
    }
    assert fns["ComputeFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Ref": "ComputeReservedConcurrency"
    }
    # 0 (the default) reserves nothing: a new account (limit 10) could not deploy otherwise.
    assert not [
        lid
        for lid, f in _of_type(origin, "AWS::Lambda::Function").items()
        if "ReservedConcurrentExecutions" in f["Properties"]
    ]
    # The ingest queue's poller never runs more ingest functions than the parameter allows:
    # a throttled SQS delivery would count towards the DLQ.
    (mapping,) = [
        m
        for m in _of_type(origin, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": "IngestFunction"}
    ]
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "IngestMaxConcurrency"}}
    assert params["IngestMaxConcurrency"]["MinValue"] == 2  # Lambda's floor for MaximumConcurrency


def test_http_api_is_throttled(origin):
    settings = _stage(origin)["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
    }
    params = origin["Parameters"]
    assert int(params["ApiThrottleBurst"]["Default"]) >= int(params["ApiThrottleRate"]["Default"])


def test_response_limit_keeps_the_base64_body_under_6_mb():
    """Lambda's buffered response is at most 6 MB (6,291,456 bytes), base64 and envelope included."""
    spec = load_template(TEMPLATE)["Parameters"]["ResponseLimit"]
    biggest = int(spec["MaxValue"])
    assert biggest <= 4_700_000
    envelope = json.dumps(
        {
            "statusCode": 200,
            "headers": {
                "content-type": "application/octet-stream",
                "content-length": str(biggest),
                "x-cat-cache": "hits=999 misses=999 origin-bytes=99999999",
            },
            "isBase64Encoded": True,
            "body": base64.b64encode(bytes(biggest)).decode(),
        }
    )
    assert len(envelope) < 6 * 1024 * 1024 - 16_000  # room left for more headers
    default = Settings().response_limit
    assert int(spec["Default"]) == default <= biggest
    assert Settings().payload_limit <= biggest


# -------------------------------------------------------------------------------- CORS


def test_cors_on_the_api_and_the_buckets(origin, tuned):
    render = Renderer(tuned, {"CorsOrigins": ORIGINS})
    # The API answers CORS itself (CORSMiddleware, tests/test_cors.py) from CAT_CORS_ORIGINS.
    assert render(_env(tuned, "ApiFunction")["CAT_CORS_ORIGINS"]) == ORIGINS
    (api,) = _of_type(tuned, "AWS::ApiGatewayV2::Api").values()
    assert "CorsConfiguration" not in api["Properties"]  # it would shadow the app's answers
    # Presigned GETs (read plans: origin and cache) and PUTs (staged uploads: ingest, cache).
    for lid in ("OriginBucket", "CacheBucket", "IngestBucket"):
        (rule,) = tuned["Resources"][lid]["Properties"]["CorsConfiguration"]["CorsRules"]
        assert render(rule["AllowedOrigins"]) == ORIGINS.split(","), lid
        assert {"GET", "PUT", "HEAD"} <= set(rule["AllowedMethods"]), lid
        assert "ETag" in rule["ExposedHeaders"]
    # Off by default: no bucket answers a foreign origin.
    assert not [
        lid
        for lid, b in _of_type(origin, "AWS::S3::Bucket").items()
        if "CorsConfiguration" in b["Properties"]
    ]
    assert Renderer(origin, {})(_env(origin, "ApiFunction")["CAT_CORS_ORIGINS"]) == ""


# ------------------------------------------------------------------------------ alarms


def _metrics_of(alarm: dict) -> set[tuple[str, str, str]]:
    """(namespace, metric, dimension value ref) of an alarm, plain or metric math."""
    props = alarm["Properties"]
    stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
    if "MetricName" in props:
        stats.append(props)
    return {
        (m["Namespace"], m["MetricName"], json.dumps(d["Value"], sort_keys=True))
        for m in stats
        for d in m.get("Dimensions", [])
        if d["Name"] in ("FunctionName", "ApiId", "QueueName")
    }


@pytest.mark.parametrize("which", ["origin", "subscriber"])
def test_alarms(which):
    cfn = _translate({"Role": "origin"} if which == "origin" else SUB_PARAMS)
    alarms = _of_type(cfn, "AWS::CloudWatch::Alarm")
    watched = set().union(*(_metrics_of(a) for a in alarms.values()))
    ref = lambda lid: json.dumps({"Ref": lid}, sort_keys=True)  # noqa: E731
    queue = lambda lid: json.dumps({"Fn::GetAtt": [lid, "QueueName"]}, sort_keys=True)  # noqa: E731
    # every function's throttles; compute errors; the API's 5xx; every DLQ's depth
    for fn in set(FUNCTIONS) & set(cfn["Resources"]):
        assert ("AWS/Lambda", "Throttles", ref(fn)) in watched, fn
    assert ("AWS/Lambda", "Errors", ref("ComputeFunction")) in watched
    assert ("AWS/ApiGateway", "5xx", ref("HttpApi")) in watched
    assert ("AWS/ApiGateway", "Count", ref("HttpApi")) in watched  # a rate, not a count
    dlqs = {"SyncDeadLetterQueue"} | ({"IngestDeadLetterQueue"} if which == "origin" else set())
    for dlq in dlqs:
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue(dlq)) in watched, dlq
    for lid, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["TreatMissingData"] == "notBreaching", lid  # quiet stacks are fine
        assert "AlarmActions" not in props, lid  # no topic given: console only
        assert props["AlarmDescription"], lid


def test_alarms_notify_the_topic_given(tuned):
    for lid, alarm in _of_type(tuned, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopicArn"}], lid
        assert alarm["Properties"]["OKActions"] == [{"Ref": "AlarmTopicArn"}], lid


def test_http_api_access_logs(origin):
    logs = _stage(origin)["AccessLogSettings"]
    group = logs["DestinationArn"]["Fn::GetAtt"][0]
    assert origin["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
    assert origin["Resources"][group]["Properties"]["RetentionInDays"] == 30
    line = json.loads(logs["Format"])  # one JSON object per request
    assert {"requestId", "status", "path", "latencyMs", "ip", "error"} <= set(line)
    assert all(v.startswith("$context.") for v in line.values())


# ------------------------------------------------------------------------ data kept


def _rules(cfn: dict, bucket: str) -> dict[str, dict]:
    return {r["Id"]: r for r in cfn["Resources"][bucket]["Properties"]["LifecycleConfiguration"]["Rules"]}


def test_origin_is_versioned_and_old_versions_expire(origin):
    props = origin["Resources"]["OriginBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    rules = _rules(origin, "OriginBucket")
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "OriginNoncurrentDays"}
    }
    assert rules["RemoveExpiredDeleteMarkers"]["ExpiredObjectDeleteMarker"] is True
    # Current objects of the origin never expire: it is the only copy.
    assert not [r for r in rules.values() if "ExpirationInDays" in r]


def test_lifecycle_rules_for_drops_staging_and_multipart(origin):
    for bucket in ("OriginBucket", "CacheBucket", "IngestBucket"):
        rules = _rules(origin, bucket)
        assert rules["AbortIncompleteUploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
        assert all(r["Status"] == "Enabled" for r in rules.values()), bucket
    for bucket in ("CacheBucket", "IngestBucket"):  # where staged uploads land (subscriber / origin)
        staged = _rules(origin, bucket)["ExpireStagedUploads"]
        assert staged["Prefix"] == "_staging/" and staged["ExpirationInDays"] == 1
    drops = _rules(origin, "IngestBucket")["ExpireDrops"]
    assert drops["ExpirationInDays"] == {"Ref": "IngestRetentionDays"} and "Prefix" not in drops
    # The cache never expires chunks: warm API containers remember what it holds.
    assert set(_rules(origin, "CacheBucket")) == {"AbortIncompleteUploads", "ExpireStagedUploads"}

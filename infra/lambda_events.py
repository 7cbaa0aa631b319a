"""Lambda events as AWS delivers them: HTTP API v2 requests, SQS batches of S3 and SNS messages.

Used by the handler tests and the artifact smoke test (``make sam-smoke``), so both feed the
handlers the shapes the template's event sources produce: S3 notifications and SNS
envelopes arrive inside SQS records (``body``), never as direct S3/SNS invocations.
Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import uuid
from collections.abc import Iterable

ACCOUNT = "123456789012"
REGION = "us-east-1"
_TIME = "2026-11-21T08:00:00.000Z"


def http_event(path: str, query: str = "", method: str = "GET", headers: dict | None = None) -> dict:
    """An API Gateway HTTP API (payload format 2.0) request for *path*."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com", "accept": "*/*", **(headers or {})},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "lambda-events",
            },
            "requestId": "corr-42",
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1795334400000,
        },
        "isBase64Encoded": False,
    }


def s3_notification(bucket: str, keys: Iterable[str], event_name: str = "ObjectCreated:Put") -> dict:
    """S3's notification message for *keys* (given decoded; URL-encoded here, as S3 does)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": _TIME,
                "eventName": event_name,
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.9"},
                "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "ingest",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": urllib.parse.quote_plus(key, safe="/"),
                        "size": 1,
                        "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                        "sequencer": "0055AED6DCD90281E5",
                    },
                },
            }
            for key in keys
        ]
    }


def sns_envelope(message: str, topic_arn: str = f"arn:aws:sns:{REGION}:{ACCOUNT}:changes") -> dict:
    """What an SQS queue subscribed to *topic_arn* (raw delivery off) receives as the body."""
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Message": message,
        "Timestamp": _TIME,
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {
            "type": {"Type": "String", "Value": _field(message, "type")},
            "root": {"Type": "String", "Value": _field(message, "root")},
        },
    }


def _field(message: str, name: str) -> str:
    try:
        return str(json.loads(message).get(name, ""))
    except (ValueError, AttributeError):
        return ""


def sqs_event(bodies: Iterable[str | dict], queue: str = "queue") -> dict:
    """A Lambda SQS event: one record per body (dicts are JSON-encoded), ids ``m0``, ``m1``..."""
    records = []
    for i, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body)
        records.append(
            {
                "messageId": f"m{i}",
                "receiptHandle": f"AQEB{i}",
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795334400000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795334400001",
                },
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(text.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def failed_ids(response: dict) -> list[str]:
    """The message ids a partial batch response reports failed."""
    return sorted(f["itemIdentifier"] for f in response.get("batchItemFailures", []))

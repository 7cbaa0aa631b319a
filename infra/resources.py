"""Creating the local stack's resources (buckets, topic, queues, notification) from a :class:`LocalPlan`.

Idempotent, so a restart against a still-running endpoint (moto, LocalStack) keeps the data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the plan module imports this one
    from infra.template import LocalPlan

__all__ = ["create_local_resources"]


def _ensure_bucket(s3, name: str) -> None:
    region = s3.meta.region_name or "us-east-1"
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        # Outside us-east-1, S3 insists on a LocationConstraint matching the endpoint's region.
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass  # a restart against a still-running endpoint: keep the data


def _apply_bucket_properties(s3, name: str, props: Mapping[str, Any]) -> None:
    sse = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
    if sse:
        # CloudFormation says ServerSideEncryptionByDefault, the S3 API ApplyServerSideEncryptionByDefault.
        rules = [{"ApplyServerSideEncryptionByDefault": r["ServerSideEncryptionByDefault"]} for r in sse]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    pab = props.get("PublicAccessBlockConfiguration")
    if pab:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=dict(pab))
    own = props.get("OwnershipControls")
    if own:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=dict(own))


def _queue_policy(queue_arn: str, source_arn: str, service: str) -> str:
    # Real SQS (and LocalStack) drop deliveries that no queue policy allows; moto does not
    # check, but the stand-in should be right wherever it runs.
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowDeliveryFromSource",
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}},
                }
            ],
        }
    )


def _queue_arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _ensure_queue(sqs, plan: LocalPlan, name: str, source_arn: str, service: str) -> tuple[str, str]:
    """The event queue *name* with the policy letting *service* send, and its DLQ and redrive policy."""
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = _queue_arn(sqs, url)
    attributes = {"Policy": _queue_policy(arn, source_arn, service)}
    dead = plan.dead_letter_queues.get(name)
    if dead:
        dead_arn = _queue_arn(sqs, sqs.create_queue(QueueName=dead)["QueueUrl"])
        redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": plan.max_receive_counts.get(name, 5)}
        attributes["RedrivePolicy"] = json.dumps(redrive)
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url, arn


def _drop_s3_test_events(sqs, url: str) -> None:
    """Consume the ``s3:TestEvent`` S3 sends when a notification is configured.

    It is not an object event; leaving it would make the dispatcher's first ingest batch a
    rejected one. Anything else found (there should be nothing yet) is left in the queue.
    """
    resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0)
    for msg in resp.get("Messages", []):
        try:
            is_test = json.loads(msg["Body"]).get("Event") == "s3:TestEvent"
        except (ValueError, AttributeError):
            is_test = False
        if is_test:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])


def create_local_resources(
    plan: LocalPlan,
    *,
    s3=None,
    sns=None,
    sqs=None,
    session=None,
    endpoint_url: str | None = None,
) -> dict[str, Any]:
    """Create the planned resources (idempotent): buckets, topic, queues, subscriptions, notification.

    Parameters
    ----------
    plan : LocalPlan
        From :func:`local_plan`.
    s3, sns, sqs : boto3 clients, optional
        Clients to use; any not given is made from *session* and *endpoint_url*.
    session : boto3.session.Session, optional
        Used for the clients not given (default: a new session, region ``us-east-1``).
    endpoint_url : str, optional
        Endpoint for the clients made here (moto server, LocalStack); default: boto3's own
        resolution, which honours ``AWS_ENDPOINT_URL``.

    Returns
    -------
    dict
        ``topic_arn``; ``queue_urls`` (queue name -> URL); ``sync_queue_urls`` (region label
        -> URL); ``ingest_queue_url``; ``subscription_arns`` (region label -> ARN);
        ``dead_letter_queue_urls`` (event queue name -> its dead-letter queue's URL).

    """
    if s3 is None or sns is None or sqs is None:
        import boto3  # only here: the planning half of this module needs no AWS SDK

        session = session or boto3.session.Session(region_name="us-east-1")
        s3 = s3 or session.client("s3", endpoint_url=endpoint_url)
        sns = sns or session.client("sns", endpoint_url=endpoint_url)
        sqs = sqs or session.client("sqs", endpoint_url=endpoint_url)

    for name in (plan.origin_bucket, plan.ingest_bucket, *plan.cache_buckets.values()):
        _ensure_bucket(s3, name)
        _apply_bucket_properties(s3, name, plan.bucket_properties.get(name, {}))

    topic_arn = sns.create_topic(Name=plan.topic_name)["TopicArn"]

    queue_urls: dict[str, str] = {}
    sync_queue_urls: dict[str, str] = {}
    subscription_arns: dict[str, str] = {}
    for label, queue in plan.sync_queues.items():
        url, arn = _ensure_queue(sqs, plan, queue, topic_arn, "sns.amazonaws.com")
        queue_urls[queue] = sync_queue_urls[label] = url
        # Raw delivery off: the SQS body is the SNS envelope ({"Type": "Notification",
        # "Message": ..., "MessageAttributes": ...}), i.e. what Lambda's SNS record carries.
        subscription_arns[label] = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "false"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]

    bucket_arn = f"arn:aws:s3:::{plan.ingest_bucket}"
    ingest_url, ingest_arn = _ensure_queue(sqs, plan, plan.ingest_queue, bucket_arn, "s3.amazonaws.com")
    queue_urls[plan.ingest_queue] = ingest_url
    queue_config: dict[str, Any] = {
        "Id": "ingest",
        "QueueArn": ingest_arn,
        "Events": list(plan.ingest_events),
    }
    if plan.ingest_filter:
        queue_config["Filter"] = plan.ingest_filter
    s3.put_bucket_notification_configuration(
        Bucket=plan.ingest_bucket, NotificationConfiguration={"QueueConfigurations": [queue_config]}
    )
    _drop_s3_test_events(sqs, ingest_url)

    dead_letter_urls = {
        q: sqs.get_queue_url(QueueName=d)["QueueUrl"] for q, d in plan.dead_letter_queues.items()
    }
    return {
        "topic_arn": topic_arn,
        "queue_urls": queue_urls,
        "dead_letter_queue_urls": dead_letter_urls,
        "sync_queue_urls": sync_queue_urls,
        "ingest_queue_url": ingest_url,
        "subscription_arns": subscription_arns,
    }

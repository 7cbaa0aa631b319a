"""The local stack's resources, derived from ``template.yaml`` (one source of truth).

The SAM template is what runs on AWS. The local stack (moto, or LocalStack) cannot run
Lambda event sources, so each one gets a stand-in that delivers the same event shape to
the same handler code:

=============================================  ===============================================
template.yaml                                  local stand-in
=============================================  ===============================================
``OriginBucket`` / ``IngestBucket``            a bucket each
``CacheBucket`` (one per region)               one bucket per region label
``ChangeTopic``                                the same SNS topic
``SNS`` event of ``SyncFunction``              one SQS queue per region, subscribed to the topic
                                               (raw delivery off: the body is the SNS envelope,
                                               as in a Lambda SNS record's ``Sns`` member)
``S3`` event of ``IngestFunction``             an S3 -> SQS notification on the ingest bucket
``ComputeFunction`` (invoked by the API)       called in-process; only its name is planned
``HttpApi`` -> ``ApiFunction``                 uvicorn serving the same FastAPI app
=============================================  ===============================================

:func:`local_plan` walks the template and refuses (:class:`TemplateDrift`) anything it has
no stand-in for, so a resource added to the template cannot silently be missing locally.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "LocalPlan",
    "TemplateDrift",
    "create_local_resources",
    "evaluate_conditions",
    "load_template",
    "local_plan",
    "resolve_conditions",
]


class TemplateDrift(ValueError):
    """The template defines something the local stack has no stand-in for (or lacks a part it needs)."""


# --------------------------------------------------------------------------------- loading


class _CfnLoader(yaml.SafeLoader):
    """PyYAML loader that keeps CloudFormation short-form intrinsics as their long-form data."""


# CloudFormation YAML has no timestamps: "2010-09-09" must stay a string even unquoted.
_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        # !GetAtt Res.Attr is the short form of [Res, Attr]; attributes may contain dots.
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML (or JSON) template, keeping intrinsics as data.

    Parameters
    ----------
    path : str or Path
        The template file.

    Returns
    -------
    dict
        The template, with short forms turned into long forms: ``!Ref X`` becomes
        ``{"Ref": "X"}``, ``!GetAtt A.B`` becomes ``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s``
        becomes ``{"Fn::Sub": s}`` and so on.

    """
    text = Path(path).read_text(encoding="utf-8")
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader


# ------------------------------------------------------------------------------ conditions


def _parameter_values(template: Mapping[str, Any], parameters: Mapping[str, Any] | None) -> dict[str, str]:
    values = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    for name, value in (parameters or {}).items():
        if name not in values:
            raise KeyError(f"template has no parameter {name!r}")
        values[name] = str(value)
    return values


def _eval_condition(expr: Any, params: Mapping[str, str], conditions: Mapping[str, Any], seen: dict) -> Any:
    """Evaluate a condition expression (Fn::Equals/Not/And/Or, Condition, Ref to a parameter)."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Condition":
            if arg not in seen:
                seen[arg] = bool(_eval_condition(conditions[arg], params, conditions, seen))
            return seen[arg]
        if fn == "Ref":
            if arg not in params:
                raise TemplateDrift(f"condition refers to {arg!r}, which is not a parameter")
            return params[arg]
        if fn == "Fn::Equals":
            left, right = (_eval_condition(a, params, conditions, seen) for a in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not _eval_condition(arg[0], params, conditions, seen)
        if fn == "Fn::And":
            return all(_eval_condition(a, params, conditions, seen) for a in arg)
        if fn == "Fn::Or":
            return any(_eval_condition(a, params, conditions, seen) for a in arg)
        raise TemplateDrift(f"unsupported function in a condition: {fn}")
    return expr


def evaluate_conditions(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, bool]:
    """Evaluate every entry of the template's ``Conditions`` for the given parameter values.

    Parameters
    ----------
    template : mapping
        A template as returned by :func:`load_template` (or translated by SAM).
    parameters : mapping, optional
        Parameter values; parameters not given take their ``Default``.

    Returns
    -------
    dict
        Condition name -> bool.

    """
    params = _parameter_values(template, parameters)
    conditions = template.get("Conditions", {})
    seen: dict[str, bool] = {}
    return {name: bool(_eval_condition({"Condition": name}, params, conditions, seen)) for name in conditions}


_NO_VALUE = object()


def _prune(node: Any, conds: Mapping[str, bool]) -> Any:
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            name, when_true, when_false = node["Fn::If"]
            return _prune(when_true if conds[name] else when_false, conds)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        out = {}
        for key, value in node.items():
            value = _prune(value, conds)
            if value is not _NO_VALUE:
                out[key] = value
        return out
    if isinstance(node, list):
        return [v for v in (_prune(v, conds) for v in node) if v is not _NO_VALUE]
    return node


def resolve_conditions(
    template: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The template as CloudFormation would see it for these parameters, conditions applied.

    Resources and outputs whose ``Condition`` is false are dropped, every ``Fn::If`` is
    replaced by the branch taken and ``AWS::NoValue`` removed. Other intrinsics stay as data.

    Parameters
    ----------
    template : mapping
        A template as returned by :func:`load_template` (or translated by SAM).
    parameters : mapping, optional
        Parameter values; parameters not given take their ``Default``.

    Returns
    -------
    dict
        A new template; the input is not modified.

    """
    conds = evaluate_conditions(template, parameters)
    out = copy.deepcopy(dict(template))
    for section in ("Resources", "Outputs"):
        kept = {
            lid: body for lid, body in out.get(section, {}).items() if conds.get(body.get("Condition"), True)
        }
        if section in out:
            out[section] = kept
    # Conditions themselves and Rules are not resources: leave them, prune the rest.
    for section in ("Globals", "Resources", "Outputs"):
        if section in out:
            out[section] = _prune(out[section], conds)
    return out


# ------------------------------------------------------------------------------------ plan

# Resource types with nothing to stand in for locally (uvicorn serves the app directly, the
# dependencies are installed, logs go to the console, moto does not enforce topic policies).
_NOT_NEEDED_LOCALLY = {
    "AWS::Serverless::LayerVersion",
    "AWS::Serverless::HttpApi",
    "AWS::Logs::LogGroup",
    "AWS::SNS::TopicPolicy",
}
_LOCAL_TYPES = (
    "AWS::S3::Bucket",
    "AWS::SNS::Topic",
    "AWS::Serverless::Function",
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
)
# Properties of the user pool / client that moto's Cognito takes as they are in the template
_POOL_PROPERTIES = ("AdminCreateUserConfig", "Policies", "UsernameConfiguration")
_CLIENT_PROPERTIES = ("GenerateSecret", "ExplicitAuthFlows", "PreventUserExistenceErrors")
_BUCKET_ROLES = ("origin", "cache", "ingest")
# Bucket properties the local stack applies as well, so the local buckets behave alike.
_LOCAL_BUCKET_PROPERTIES = ("BucketEncryption", "PublicAccessBlockConfiguration", "OwnershipControls")


@dataclass(frozen=True)
class LocalPlan:
    """What the local stack creates to stand in for ``template.yaml``'s resources.

    Attributes
    ----------
    origin_bucket, ingest_bucket : str
        Bucket names.
    topic_name : str
        The change topic's name.
    cache_buckets : dict
        Region label -> that region's cache bucket.
    sync_queues : dict
        Region label -> SQS queue standing in for the SNS -> SyncFunction subscription.
    ingest_queue : str
        SQS queue standing in for the S3 -> IngestFunction notification.
    compute_function : str
        The compute function's name (locally its handler is called in-process).
    handlers : dict
        Role (``api``, ``ingest``, ``sync``, ``compute``) -> the template's handler path.
    ingest_events : tuple of str
        S3 event types the ingest bucket notifies (e.g. ``s3:ObjectCreated:*``).
    ingest_filter : dict or None
        The S3 event's key filter, in the notification API's shape, if the template sets one.
    bucket_properties : dict
        Bucket name -> template properties the local bucket mirrors (encryption, public
        access block, ownership).
    user_pool : dict
        The ``AWS::Cognito::UserPool``'s properties the local pool is created with
        (admin-only sign-up, password policy).
    user_pool_client : dict
        The ``AWS::Cognito::UserPoolClient``'s properties (auth flows, no secret).

    """

    origin_bucket: str
    ingest_bucket: str
    topic_name: str
    cache_buckets: dict[str, str]
    sync_queues: dict[str, str]
    ingest_queue: str
    compute_function: str
    handlers: dict[str, str] = field(default_factory=dict)
    ingest_events: tuple[str, ...] = ("s3:ObjectCreated:*",)
    ingest_filter: dict[str, Any] | None = None
    bucket_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    user_pool: dict[str, Any] = field(default_factory=dict)
    user_pool_client: dict[str, Any] = field(default_factory=dict)


def _local_name(prefix: str, name_expr: Any, fallback: str) -> str:
    """A local name from a template naming rule such as ``!Sub "${AWS::StackName}-cache-..."``.

    ``${AWS::StackName}`` becomes *prefix*; account and region parts are dropped (moto has
    one account and the region is a label of ours). Anything else falls back to *fallback*.
    """
    text = name_expr.get("Fn::Sub") if isinstance(name_expr, dict) else None
    if not isinstance(text, str) or not text.startswith("${AWS::StackName}"):
        return fallback
    text = re.sub(r"-?\$\{AWS::(AccountId|Region)\}", "", text).replace("${AWS::StackName}", prefix)
    return text if "${" not in text else fallback


def _ref_target(expr: Any) -> str | None:
    """The logical id an expression refers to (``Ref`` or ``Fn::GetAtt``), else None."""
    if isinstance(expr, dict) and len(expr) == 1:
        if "Ref" in expr:
            return expr["Ref"]
        if "Fn::GetAtt" in expr:
            return expr["Fn::GetAtt"][0]
    return None


def _one(found: list[str], what: str) -> str:
    if len(found) != 1:
        raise TemplateDrift(f"expected exactly one {what} in template.yaml, found {found or 'none'}")
    return found[0]


def _s3_filter_to_api(flt: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """SAM's S3 event ``Filter`` (CloudFormation shape) -> PutBucketNotificationConfiguration shape."""
    if not flt:
        return None
    rules = flt.get("S3Key", {}).get("Rules", [])
    return {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}


def local_plan(
    template_path: str | Path,
    prefix: str = "cat-local",
    regions: tuple[str, ...] | list[str] = ("r1", "r2"),
) -> LocalPlan:
    """Derive the local stack's resources from the SAM template (as an origin stack).

    Parameters
    ----------
    template_path : str or Path
        ``template.yaml``.
    prefix : str
        Stands in for the stack name in every resource name.
    regions : sequence of str
        Region labels; each gets a cache bucket and a sync queue.

    Returns
    -------
    LocalPlan

    Raises
    ------
    TemplateDrift
        If the template has a resource, bucket role, event source or subscriber that the
        local stack has no stand-in for, or lacks one it needs.

    """
    regions = tuple(regions)
    if not regions or len(set(regions)) != len(regions):
        raise ValueError(f"need distinct region labels, got {regions!r}")
    raw = load_template(template_path)
    if "Role" not in raw.get("Parameters", {}):
        raise TemplateDrift("template.yaml has no Role parameter (origin|subscriber)")
    # The local stack is an origin: it owns the buckets and the topic.
    tpl = resolve_conditions(raw, {"Role": "origin"})
    resources: dict[str, Any] = tpl["Resources"]
    fn_globals = tpl.get("Globals", {}).get("Function", {})

    unknown = sorted(
        f"{lid} ({body['Type']})"
        for lid, body in resources.items()
        if body["Type"] not in _NOT_NEEDED_LOCALLY and body["Type"] not in _LOCAL_TYPES
    )
    if unknown:
        raise TemplateDrift(f"no local stand-in for {', '.join(unknown)}: teach infra/template.py about it")

    # Buckets: the logical id names the role (OriginBucket, CacheBucket, IngestBucket).
    bucket_ids: dict[str, str] = {}
    for lid, body in resources.items():
        if body["Type"] != "AWS::S3::Bucket":
            continue
        role = lid.removesuffix("Bucket").lower()
        if not lid.endswith("Bucket") or role not in _BUCKET_ROLES:
            raise TemplateDrift(f"bucket {lid}: the local stack knows {_BUCKET_ROLES} buckets only")
        bucket_ids[role] = lid
    missing = [r for r in _BUCKET_ROLES if r not in bucket_ids]
    if missing:
        raise TemplateDrift(f"template.yaml lacks the {missing} bucket(s) the local stack needs")

    def bucket_name(role: str, suffix: str = "") -> str:
        props = resources[bucket_ids[role]].get("Properties", {})
        return _local_name(prefix, props.get("BucketName"), f"{prefix}-{role}") + suffix

    topic_id = _one([lid for lid, b in resources.items() if b["Type"] == "AWS::SNS::Topic"], "SNS topic")
    topic_name = _local_name(
        prefix, resources[topic_id].get("Properties", {}).get("TopicName"), f"{prefix}-changes"
    )

    # Functions: the role of each follows from how it is triggered.
    handlers: dict[str, str] = {}
    fn_names: dict[str, str] = {}  # logical id -> local function name
    role_ids: dict[str, str] = {}  # role -> logical id
    sns_subscribers: list[str] = []
    s3_notified: list[tuple[str, dict[str, Any]]] = []
    for lid, body in resources.items():
        if body["Type"] != "AWS::Serverless::Function":
            continue
        props = body.get("Properties", {})
        short = lid.removesuffix("Function").lower()
        fn_names[lid] = _local_name(prefix, props.get("FunctionName"), f"{prefix}-{short}")
        events = props.get("Events") or {}
        kinds = {ev["Type"] for ev in events.values()}
        if kinds - {"HttpApi", "SNS", "S3"}:
            raise TemplateDrift(
                f"{lid}: no local stand-in for event type(s) {sorted(kinds - {'HttpApi', 'SNS', 'S3'})}"
            )
        if len(kinds) > 1:
            raise TemplateDrift(f"{lid}: one trigger kind per function expected, found {sorted(kinds)}")
        for ev in events.values():
            evp = ev.get("Properties", {})
            if ev["Type"] == "SNS":
                if _ref_target(evp.get("Topic")) != topic_id:
                    raise TemplateDrift(f"{lid}: subscribes to {evp.get('Topic')!r}, not to {topic_id}")
                sns_subscribers.append(lid)
            elif ev["Type"] == "S3":
                if _ref_target(evp.get("Bucket")) != bucket_ids["ingest"]:
                    raise TemplateDrift(f"{lid}: notified by {evp.get('Bucket')!r}, not by the ingest bucket")
                s3_notified.append((lid, evp))
        role = {"HttpApi": "api", "SNS": "sync", "S3": "ingest"}[kinds.pop()] if kinds else "compute"
        if role in handlers:
            raise TemplateDrift(f"{lid}: a second {role} function; the local stack runs one of each")
        handlers[role] = props.get("Handler") or fn_globals.get("Handler", "")
        role_ids[role] = lid

    missing = [r for r in ("api", "ingest", "sync", "compute") if r not in handlers]
    if missing:
        raise TemplateDrift(f"template.yaml lacks the {missing} function(s) the local stack runs")
    sync_id = _one(sns_subscribers, "function subscribed to the change topic")
    ingest_id, ingest_event = s3_notified[0]
    events = ingest_event.get("Events")
    events = (events,) if isinstance(events, str) else tuple(events)

    cache_buckets = {label: bucket_name("cache", f"-{label}") for label in regions}
    origin, ingest = bucket_name("origin"), bucket_name("ingest")
    bucket_properties = {}
    for role, names in (("origin", [origin]), ("ingest", [ingest]), ("cache", list(cache_buckets.values()))):
        props = resources[bucket_ids[role]].get("Properties", {})
        for name in names:
            bucket_properties[name] = {
                k: copy.deepcopy(props[k]) for k in _LOCAL_BUCKET_PROPERTIES if k in props
            }

    return LocalPlan(
        origin_bucket=origin,
        ingest_bucket=ingest,
        topic_name=topic_name,
        cache_buckets=cache_buckets,
        sync_queues={label: f"{fn_names[sync_id]}-{label}" for label in regions},
        ingest_queue=f"{fn_names[ingest_id]}-events",
        compute_function=fn_names[role_ids["compute"]],
        handlers=handlers,
        ingest_events=events,
        ingest_filter=_s3_filter_to_api(ingest_event.get("Filter")),
        bucket_properties=bucket_properties,
        user_pool=_properties_of(resources, "AWS::Cognito::UserPool", _POOL_PROPERTIES),
        user_pool_client=_properties_of(resources, "AWS::Cognito::UserPoolClient", _CLIENT_PROPERTIES),
    )


def _properties_of(resources: Mapping[str, Any], kind: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The listed properties of the one resource of *kind* (the local stack needs exactly one)."""
    found = [body for body in resources.values() if body["Type"] == kind]
    if len(found) != 1:
        raise TemplateDrift(f"template.yaml must define exactly one {kind}, found {len(found)}")
    props = found[0].get("Properties", {})
    return {k: props[k] for k in names if k in props}


# ------------------------------------------------------------------------------- resources


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


def _ensure_queue(sqs, name: str, source_arn: str, service: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": _queue_policy(arn, source_arn, service)})
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
        -> URL); ``ingest_queue_url``; ``subscription_arns`` (region label -> ARN).

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
        url, arn = _ensure_queue(sqs, queue, topic_arn, "sns.amazonaws.com")
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
    ingest_url, ingest_arn = _ensure_queue(sqs, plan.ingest_queue, bucket_arn, "s3.amazonaws.com")
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

    return {
        "topic_arn": topic_arn,
        "queue_urls": queue_urls,
        "sync_queue_urls": sync_queue_urls,
        "ingest_queue_url": ingest_url,
        "subscription_arns": subscription_arns,
    }

"""The local stack's plan, derived from ``template.yaml`` (one source of truth).

The SAM template is what runs on AWS. The local stack (moto, or LocalStack) cannot run
Lambda event sources, so each one gets a stand-in that delivers the same event shape to
the same handler code:

=============================================  ===============================================
template.yaml                                  local stand-in
=============================================  ===============================================
``OriginBucket`` / ``IngestBucket``            a bucket each
``CacheBucket`` (one per region)               one bucket per region label
``ChangeTopic``                                the same SNS topic
``SyncQueue`` + ``SyncSubscription``           one SQS queue per region, subscribed to the topic
                                               (raw delivery off: the body is the SNS envelope)
``IngestQueue`` + the ingest bucket's          the same queue and S3 -> SQS notification
notification
dead-letter queues and redrive policies        the same, per queue
``SQS`` events (``ReportBatchItemFailures``)   :mod:`infra.dispatch`: one thread per queue hands
                                               Lambda-shaped SQS batches to the handler code and
                                               deletes only the records not reported failed
``ComputeFunction`` (invoked by the API)       called in-process; only its name is planned
``HttpApi`` -> ``ApiFunction``                 uvicorn serving the same FastAPI app
``StreamApi`` -> ``StreamFunction`` (REST API,   the same uvicorn: it streams answers past the
response streaming, Lambda Web Adapter)        buffered limit itself (``StackConfig.stream_limit``)
queue policies, alarms, log groups, layer      nothing (moto enforces no policies; no CloudWatch)
=============================================  ===============================================

:func:`local_plan` walks the template (read by :mod:`infra.cfn`) and refuses
(:class:`TemplateDrift`) anything it has no stand-in for, so a resource added to the
template cannot silently be missing locally;
:func:`create_local_resources` (:mod:`infra.resources`) creates what it plans.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The reader and the resource creation live in their own modules; their public names stay
# importable from here, the one module the local stack and the tests speak to.
from infra.cfn import TemplateDrift, evaluate_conditions, load_template, resolve_conditions
from infra.resources import create_local_resources

__all__ = [
    "LocalPlan",
    "TemplateDrift",
    "create_local_resources",
    "evaluate_conditions",
    "load_template",
    "local_plan",
    "resolve_conditions",
]


# ------------------------------------------------------------------------------------ plan

# Resource types with nothing to stand in for locally (uvicorn serves the app directly, the
# dependencies are installed, logs go to the console, moto does not enforce topic policies).
_NOT_NEEDED_LOCALLY = {
    "AWS::Serverless::LayerVersion",
    "AWS::Serverless::HttpApi",
    "AWS::Serverless::Api",  # the streaming front: the local API streams by itself
    "AWS::Logs::LogGroup",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",  # the local stack writes the equivalent policy itself
    "AWS::CloudWatch::Alarm",
}
_LOCAL_TYPES = (
    "AWS::S3::Bucket",
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::SQS::Queue",
    "AWS::Lambda::EventSourceMapping",
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
        The ingest queue (the ingest bucket notifies it; the ingest handler drains it).
    dead_letter_queues : dict
        Queue name (ingest, and each region's sync queue) -> its dead-letter queue's name.
    max_receive_counts : dict
        Queue name -> deliveries before a record goes to the dead-letter queue.
    compute_function : str
        The compute function's name (locally its handler is called in-process).
    handlers : dict
        Role (``api``, ``ingest``, ``sync``, ``compute``, and ``stream`` when the template has the
        streaming front) -> the template's handler path.
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
    dead_letter_queues: dict[str, str] = field(default_factory=dict)
    max_receive_counts: dict[str, int] = field(default_factory=dict)


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
    tpl = _origin_template(template_path)
    resources: dict[str, Any] = tpl["Resources"]
    _refuse_unknown_types(resources)
    bucket_ids = _bucket_ids(resources)
    topic_id = _one([lid for lid, b in resources.items() if b["Type"] == "AWS::SNS::Topic"], "SNS topic")
    queues = _queues(resources, topic_id, bucket_ids["ingest"], prefix)
    fns = _functions(resources, tpl.get("Globals", {}).get("Function", {}), prefix, queues)
    names = _bucket_names(resources, bucket_ids, prefix, regions)
    sync_queues = {label: f"{queues.names[queues.sync_id]}-{label}" for label in regions}
    ingest_queue = queues.names[queues.ingest_id]
    sync_dlq = queues.dlq_names[queues.sync_id]
    dead_letters = {ingest_queue: queues.dlq_names[queues.ingest_id]}
    dead_letters |= {q: f"{sync_dlq}-{label}" for label, q in sync_queues.items()}
    receives = {ingest_queue: queues.max_receive[queues.ingest_id]}
    receives |= {q: queues.max_receive[queues.sync_id] for q in sync_queues.values()}
    return LocalPlan(
        origin_bucket=names["origin"][0],
        ingest_bucket=names["ingest"][0],
        topic_name=_local_name(
            prefix, resources[topic_id].get("Properties", {}).get("TopicName"), f"{prefix}-changes"
        ),
        cache_buckets=dict(zip(regions, names["cache"], strict=True)),
        sync_queues=sync_queues,
        ingest_queue=ingest_queue,
        compute_function=fns.names[fns.role_ids["compute"]],
        handlers=fns.handlers,
        ingest_events=queues.ingest_events,
        ingest_filter=_s3_filter_to_api(queues.ingest_notification.get("Filter")),
        bucket_properties=_bucket_properties(resources, bucket_ids, names),
        user_pool=_properties_of(resources, "AWS::Cognito::UserPool", _POOL_PROPERTIES),
        user_pool_client=_properties_of(resources, "AWS::Cognito::UserPoolClient", _CLIENT_PROPERTIES),
        dead_letter_queues=dead_letters,
        max_receive_counts=receives,
    )


def _origin_template(template_path: str | Path) -> dict[str, Any]:
    """The template with its conditions applied for ``Role=origin``."""
    raw = load_template(template_path)
    if "Role" not in raw.get("Parameters", {}):
        raise TemplateDrift("template.yaml has no Role parameter (origin|subscriber)")
    # The local stack is an origin: it owns the buckets and the topic.
    return resolve_conditions(raw, {"Role": "origin"})


def _refuse_unknown_types(resources: Mapping[str, Any]) -> None:
    unknown = sorted(
        f"{lid} ({body['Type']})"
        for lid, body in resources.items()
        if body["Type"] not in _NOT_NEEDED_LOCALLY and body["Type"] not in _LOCAL_TYPES
    )
    if unknown:
        raise TemplateDrift(f"no local stand-in for {', '.join(unknown)}: teach infra/template.py about it")


def _bucket_ids(resources: Mapping[str, Any]) -> dict[str, str]:
    """Bucket role -> logical id; the logical id names the role (OriginBucket, CacheBucket, IngestBucket)."""
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
    return bucket_ids


def _bucket_names(
    resources: Mapping[str, Any], bucket_ids: Mapping[str, str], prefix: str, regions: tuple[str, ...]
) -> dict[str, list[str]]:
    """Bucket role -> local bucket names (one per region for ``cache``, in region order)."""

    def name(role: str, suffix: str = "") -> str:
        props = resources[bucket_ids[role]].get("Properties", {})
        return _local_name(prefix, props.get("BucketName"), f"{prefix}-{role}") + suffix

    return {
        "origin": [name("origin")],
        "ingest": [name("ingest")],
        "cache": [name("cache", f"-{label}") for label in regions],
    }


def _bucket_properties(
    resources: Mapping[str, Any], bucket_ids: Mapping[str, str], names: Mapping[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Local bucket name -> the template properties it mirrors."""
    out: dict[str, dict[str, Any]] = {}
    for role in ("origin", "ingest", "cache"):
        props = resources[bucket_ids[role]].get("Properties", {})
        for name in names[role]:
            out[name] = {k: copy.deepcopy(props[k]) for k in _LOCAL_BUCKET_PROPERTIES if k in props}
    return out


@dataclass
class _Queues:
    """The template's event queues: which feeds which, their names and dead-letter queues."""

    names: dict[str, str] = field(default_factory=dict)  # logical id -> local queue name
    dlq_names: dict[str, str] = field(default_factory=dict)  # event queue id -> its DLQ's local name
    max_receive: dict[str, int] = field(default_factory=dict)  # event queue id -> maxReceiveCount
    ingest_id: str = ""  # the queue the ingest bucket notifies
    sync_id: str = ""  # the queue subscribed to the change topic
    ingest_notification: dict[str, Any] = field(default_factory=dict)  # its QueueConfiguration

    @property
    def ingest_events(self) -> tuple[str, ...]:
        return (self.ingest_notification["Event"],)

    def role(self, queue_id: str) -> str | None:
        return {self.ingest_id: "ingest", self.sync_id: "sync"}.get(queue_id)


def _queues(resources: Mapping[str, Any], topic_id: str, ingest_id: str, prefix: str) -> _Queues:
    """Find the ingest queue (bucket notification), the sync queue (topic subscription) and their DLQs."""
    queues = _Queues()
    ids = [lid for lid, b in resources.items() if b["Type"] == "AWS::SQS::Queue"]
    for lid in ids:
        props = resources[lid].get("Properties", {})
        queues.names[lid] = _local_name(prefix, props.get("QueueName"), f"{prefix}-{lid.lower()}")
    configs = resources[ingest_id].get("Properties", {}).get("NotificationConfiguration", {})
    if set(configs) - {"QueueConfigurations"}:
        raise TemplateDrift(
            f"the ingest bucket notifies {sorted(configs)}: the local stack stands in for queues"
        )
    notified = configs.get("QueueConfigurations", [])
    if len(notified) != 1:
        raise TemplateDrift(
            f"expected exactly one queue notified by the ingest bucket, found {len(notified)}"
        )
    queues.ingest_notification = notified[0]
    queues.ingest_id = _ref_target(notified[0].get("Queue")) or ""
    subs = [b.get("Properties", {}) for b in resources.values() if b["Type"] == "AWS::SNS::Subscription"]
    if len(subs) != 1 or subs[0].get("Protocol") != "sqs" or _ref_target(subs[0].get("TopicArn")) != topic_id:
        raise TemplateDrift("expected exactly one SQS subscription to the change topic")
    queues.sync_id = _ref_target(subs[0].get("Endpoint")) or ""
    for qid in (queues.ingest_id, queues.sync_id):
        if qid not in queues.names:
            raise TemplateDrift(f"{qid or 'an event source'} is not an SQS queue of the template")
        redrive = resources[qid].get("Properties", {}).get("RedrivePolicy") or {}
        dlq = _ref_target(redrive.get("deadLetterTargetArn"))
        if dlq not in queues.names:
            raise TemplateDrift(f"{qid} has no dead-letter queue of the template (RedrivePolicy)")
        queues.dlq_names[qid] = queues.names[dlq]
        queues.max_receive[qid] = int(redrive.get("maxReceiveCount", 5))
    known = {queues.ingest_id, queues.sync_id} | {
        _ref_target(resources[q]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in (queues.ingest_id, queues.sync_id)
    }
    if set(ids) - known:
        raise TemplateDrift(f"no local stand-in for queue(s) {sorted(set(ids) - known)}")
    return queues


@dataclass
class _Functions:
    """What the plan needs from the template's functions."""

    names: dict[str, str] = field(default_factory=dict)  # logical id -> local function name
    handlers: dict[str, str] = field(default_factory=dict)  # role -> handler path
    role_ids: dict[str, str] = field(default_factory=dict)  # role -> logical id


def _functions(
    resources: Mapping[str, Any], fn_globals: Mapping[str, Any], prefix: str, queues: _Queues
) -> _Functions:
    """Every function's local name, role and handler; the role of each follows from its trigger."""
    fns = _Functions()
    polled: dict[str, list[dict[str, Any]]] = {}  # function id -> its event source mappings
    for body in resources.values():
        if body["Type"] == "AWS::Lambda::EventSourceMapping":
            props = body.get("Properties", {})
            polled.setdefault(_ref_target(props.get("FunctionName")) or "", []).append(props)
    for lid, body in resources.items():
        if body["Type"] != "AWS::Serverless::Function":
            continue
        props = body.get("Properties", {})
        short = lid.removesuffix("Function").lower()
        fns.names[lid] = _local_name(prefix, props.get("FunctionName"), f"{prefix}-{short}")
        role = _function_role(lid, props.get("Events") or {}, polled.pop(lid, []), queues)
        if role in fns.handlers:
            raise TemplateDrift(f"{lid}: a second {role} function; the local stack runs one of each")
        fns.handlers[role] = props.get("Handler") or fn_globals.get("Handler", "")
        fns.role_ids[role] = lid
    if polled:
        raise TemplateDrift(f"event source mappings of no function of the template: {sorted(polled)}")
    missing = [r for r in ("api", "ingest", "sync", "compute") if r not in fns.handlers]
    if missing:
        raise TemplateDrift(f"template.yaml lacks the {missing} function(s) the local stack runs")
    return fns


def _function_role(
    lid: str, events: Mapping[str, Any], mappings: list[dict[str, Any]], queues: _Queues
) -> str:
    """The role a function's trigger gives it: the API's, the ingest or sync queue's, or compute.

    *events* are its SAM events (only ``HttpApi`` has a stand-in), *mappings* the
    ``AWS::Lambda::EventSourceMapping`` properties of the queues it polls.
    """
    kinds = {ev["Type"] for ev in events.values()}
    if kinds == {"Api"}:
        modes = {(ev.get("Properties") or {}).get("ResponseTransferMode") for ev in events.values()}
        if modes != {"RESPONSE_STREAM"}:
            # only the streaming front has a stand-in (the local API streams past its limit)
            raise TemplateDrift(f"{lid}: a REST API front that does not stream answers")
        return "stream"
    if kinds - {"HttpApi"}:
        raise TemplateDrift(f"{lid}: no local stand-in for event type(s) {sorted(kinds - {'HttpApi'})}")
    if kinds and mappings:
        raise TemplateDrift(f"{lid}: one trigger kind per function expected (HTTP API and SQS)")
    if kinds:
        return "api"
    roles = set()
    for props in mappings:
        role = queues.role(_ref_target(props.get("EventSourceArn")) or "")
        if role is None:
            where = props.get("EventSourceArn")
            raise TemplateDrift(f"{lid}: polls {where!r}, neither the ingest nor the sync queue")
        if "ReportBatchItemFailures" not in (props.get("FunctionResponseTypes") or []):
            # the local dispatcher honours batchItemFailures; without it Lambda would not
            raise TemplateDrift(f"{lid}: its SQS event source lacks ReportBatchItemFailures")
        roles.add(role)
    if len(roles) > 1:
        raise TemplateDrift(f"{lid}: polls both the ingest and the sync queue")
    return roles.pop() if roles else "compute"


def _properties_of(resources: Mapping[str, Any], kind: str, names: tuple[str, ...]) -> dict[str, Any]:
    """The listed properties of the one resource of *kind* (the local stack needs exactly one)."""
    found = [body for body in resources.values() if body["Type"] == kind]
    if len(found) != 1:
        raise TemplateDrift(f"template.yaml must define exactly one {kind}, found {len(found)}")
    props = found[0].get("Properties", {})
    return {k: props[k] for k in names if k in props}

"""The stack of ``template.yaml`` on an AWS-compatible endpoint (embedded moto by default),
driven through the real function handlers: what ``qlumeter run`` and the tests use.

Tables, buckets, queues and the topic are created from the template's own resource
definitions (key schemas, versioning, the bucket's notification configuration), and each
function's environment is resolved from the template, so nothing here restates them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import boto3
import yaml

if TYPE_CHECKING:
    from types_boto3_s3.type_defs import QueueConfigurationTypeDef
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.literals import QueueAttributeNameType
    from types_boto3_sqs.type_defs import MessageTypeDef

REGION: Final = "eu-west-1"
ACCOUNT = "123456789012"
STAGE = "local"
_CREATED = ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SNS::Topic")


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags as their long forms (``!Ref X`` -> Ref)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return dict(yaml.load(handle, Loader=_TemplateLoader))  # a SafeLoader subclass


@dataclass
class Context:
    """The parts of a Lambda context the handlers use: a new request id per invocation, and
    the time left (``remaining_ms``: the whole 15 minutes unless a test says otherwise)."""

    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 900_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def sqs_event(messages: list[MessageTypeDef], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS poller builds from received messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "0",
                    "SenderId": "s3",
                    "ApproximateFirstReceiveTimestamp": "0",
                    **{
                        name: m["Attributes"][name]
                        for name in ("MessageGroupId", "MessageDeduplicationId")
                        if name in m.get("Attributes", {})
                    },
                },
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


class Consumer:
    """Reads what the topic delivered to a subscribed queue (``consumer_url``)."""

    sqs: SQSClient
    consumer_url: str

    def receive(self, url: str) -> list[MessageTypeDef]:
        """Every message waiting in a queue (deleted as received)."""
        messages: list[MessageTypeDef] = []
        while batch := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            messages.extend(batch)
            for m in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return messages

    def published(self, url: str | None = None) -> list[dict[str, Any]]:
        """SNS messages delivered to a subscribed queue: bodies plus ``_attributes``."""
        out = []
        for m in self.receive(url or self.consumer_url):
            envelope = json.loads(m["Body"])
            body = json.loads(envelope["Message"])
            body["_attributes"] = {
                k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()
            }
            out.append(body)
        return out


class Stack(Consumer):
    """The template's resources and functions on one endpoint, driven in process."""

    def __init__(
        self,
        template: Path,
        setenv: Callable[[str, str], None] | None = None,
        parameters: dict[str, str] | None = None,
    ) -> None:
        self.root = template.parent
        self.template = load_template(template)
        self.resources: dict[str, dict[str, Any]] = self.template["Resources"]
        self.parameters = {
            name: str(spec.get("Default", ""))
            for name, spec in self.template.get("Parameters", {}).items()
        } | {"StageName": STAGE, **(parameters or {})}
        self._setenv = setenv or os.environ.__setitem__
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.physical: dict[str, str] = {}
        for logical, resource in self.resources.items():
            if resource["Type"] in _CREATED:
                self.physical[logical] = self._create(logical, resource)
            elif resource["Type"] == "AWS::Serverless::Function":
                self.physical[logical] = self._name(resource["Properties"], "FunctionName", logical)
        for logical, resource in self.resources.items():
            if resource["Type"] == "AWS::S3::Bucket":
                self._notifications(logical, resource["Properties"])
            elif resource["Type"] == "AWS::SNS::Subscription":
                self._subscription(resource["Properties"])
        self.inventory_bucket = self.physical[self._one("AWS::S3::Bucket", "Inventory")]
        self.queue_url = self.physical[self._one("AWS::SQS::Queue", "IngestQueue")]
        self.queue_arn = self.arn_of(self.queue_url)
        self.topic_arn = self.physical[self._one("AWS::SNS::Topic", "")]
        self.consumer_url = self.subscribe_queue("qlumeter-local-consumer")
        self.ingest = self._function("IngestFunction")
        self.dispatch_app = self._function("DispatchFunction")
        self.meter_app = self._function("MeterFunction")
        # in one process a manifest is read the moment it is written, on one clock
        self.meter_app.service.margin = timedelta(0)
        self.meter_url = self.physical[self._one("AWS::SQS::Queue", "MeterQueue")]
        self.meter_arn = self.arn_of(self.meter_url)
        self.meter_dead_url = self.physical[self._one("AWS::SQS::Queue", "MeterDeadLetter")]
        self.max_meter_receives = self._redrive("MeterQueue")
        self.runs: list[Any] = []  # every run's result, in order (``work``)
        run = self.meter_app.service.run

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = run(*args, **kwargs)
            self.runs.append(result)
            return result

        setattr(self.meter_app.service, "run", recorded)  # noqa: B010 (an instance's method)
        self.admin = self._function("AdminFunction")
        self.ledger = self._function("LedgerFunction")
        self.ledger_url = self.physical[self._one("AWS::SQS::Queue", "LedgerQueue")]
        self.ledger_arn = self.arn_of(self.ledger_url)
        self.ledger_dead: list[str] = []

    # -- building ------------------------------------------------------------------------------

    def _redrive(self, logical: str) -> int:
        """The receives after which a queue's message goes to its dead-letter queue."""
        policy = self.resources[logical]["Properties"]["RedrivePolicy"]
        return int(policy["maxReceiveCount"])

    def _one(self, kind: str, name: str) -> str:
        return next(k for k, r in self.resources.items() if r["Type"] == kind and name in k)

    def resolve(self, value: Any) -> Any:
        """A template value with Ref, Sub and GetAtt resolved against this stack."""
        if isinstance(value, dict) and len(value) == 1:
            ((name, arg),) = value.items()
            if name == "Ref":
                return self.physical.get(arg) or self.parameters.get(arg) or self._pseudo(arg)
            if name == "Fn::Sub":
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub(m.group(1))), arg)
            if name == "Fn::GetAtt":
                return self._attribute(*arg)
        return value

    def _sub(self, name: str) -> str:
        if "." in name:
            return str(self._attribute(*name.split(".", 1)))
        return str(self.resolve({"Ref": name}))

    @staticmethod
    def _pseudo(name: str) -> str:
        return {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::StackName": STAGE}[name]

    def _attribute(self, logical: str, attribute: str) -> str:
        physical = self.physical[logical]
        kind = self.resources[logical]["Type"]
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return self.arn_of(physical)
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return physical.rsplit("/", 1)[-1]
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{physical}"
        if kind == "AWS::SNS::Topic" and attribute == "TopicName":
            return physical.rsplit(":", 1)[-1]
        return f"arn:aws:local:{REGION}:{ACCOUNT}:{logical}"

    def _name(self, properties: dict[str, Any], key: str, logical: str) -> str:
        named = properties.get(key)
        return str(self.resolve(named)) if named else f"qlumeter-{STAGE}-{logical.lower()}"

    def _create(self, logical: str, resource: dict[str, Any]) -> str:
        properties = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::DynamoDB::Table":
            name = self._name(properties, "TableName", logical)
            self.ddb.create_table(
                TableName=name,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=properties["KeySchema"],
                AttributeDefinitions=properties["AttributeDefinitions"],
            )
            return name
        if kind == "AWS::S3::Bucket":
            name = self._name(properties, "BucketName", logical)
            self.s3.create_bucket(
                Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            if properties.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                self.s3.put_bucket_versioning(
                    Bucket=name, VersioningConfiguration={"Status": "Enabled"}
                )
            return name
        if kind == "AWS::SQS::Queue":
            name = self._name(properties, "QueueName", logical)
            fifo: dict[QueueAttributeNameType, str] = {
                key: str(properties[key]).lower()
                for key in ("FifoQueue", "ContentBasedDeduplication")
                if key in properties
            }
            return str(self.sqs.create_queue(QueueName=name, Attributes=fifo)["QueueUrl"])
        name = self._name(properties, "TopicName", logical)
        return str(self.sns.create_topic(Name=name)["TopicArn"])

    def _notifications(self, logical: str, properties: dict[str, Any]) -> None:
        queues = properties.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
        if not queues:
            return
        config: list[QueueConfigurationTypeDef] = [
            {
                "QueueArn": self.resolve(q["Queue"]),
                "Events": [q["Event"]],
                "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}},
            }
            for q in queues
        ]
        self.s3.put_bucket_notification_configuration(
            Bucket=self.physical[logical],
            NotificationConfiguration={"QueueConfigurations": config},
        )

    def _subscription(self, properties: dict[str, Any]) -> None:
        """The template's queue subscriptions to the topic (e-mail ones are left out)."""
        if properties["Protocol"] != "sqs":
            return
        attributes = {
            "RawMessageDelivery": str(properties.get("RawMessageDelivery", False)).lower()
        }
        if "FilterPolicy" in properties:
            attributes["FilterPolicy"] = json.dumps(properties["FilterPolicy"])
            attributes["FilterPolicyScope"] = properties.get(
                "FilterPolicyScope", "MessageAttributes"
            )
        self.sns.subscribe(
            TopicArn=self.resolve(properties["TopicArn"]),
            Protocol="sqs",
            Endpoint=self.resolve(properties["Endpoint"]),
            Attributes=attributes,
        )

    def _function(self, logical: str) -> ModuleType:
        """Load a function's handler module with its template environment."""
        properties = self.resources[logical]["Properties"]
        variables = dict(self.template["Globals"]["Function"]["Environment"]["Variables"])
        variables.update(properties.get("Environment", {}).get("Variables", {}))
        for name, value in variables.items():
            self._setenv(name, str(self.resolve(value)))
        self._setenv("POWERTOOLS_TRACE_DISABLED", "true")
        path = self.root / properties["CodeUri"] / "app.py"
        spec = importlib.util.spec_from_file_location(f"qlumeter_local_{logical}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # pydantic resolves the module's annotations there
        spec.loader.exec_module(module)
        return module

    # -- driving ---------------------------------------------------------------------------

    def arn_of(self, queue_url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    def subscribe_queue(self, name: str, filter_policy: dict[str, Any] | None = None) -> str:
        url = str(self.sqs.create_queue(QueueName=name)["QueueUrl"])
        attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
        self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=self.arn_of(url),
            Attributes=attributes,
        )
        return url

    def put_subscription(self, subscription: dict[str, Any]) -> dict[str, Any]:
        event = {"action": "put", "subscription": subscription}
        return dict(self.admin.handler(event, Context("admin")))

    def upload_file(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.inventory_bucket, Key=key, Body=body)

    def upload(self, root: Path) -> list[str]:
        """Put every file under ``root`` whose path holds ``inventory/``; returns the keys."""
        keys = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            if "inventory/" in f"/{relative}":
                key = relative[relative.index("inventory/") :]
                self.upload_file(key, path.read_bytes())
                keys.append(key)
        return keys

    def deliver(self, messages: list[MessageTypeDef] | None = None) -> dict[str, Any]:
        """Hand the queue's messages (or the given ones) to the ingest handler."""
        messages = self.receive(self.queue_url) if messages is None else messages
        if not messages:
            return {"batchItemFailures": []}
        return dict(self.ingest.handler(sqs_event(messages, self.queue_arn), Context("ingest")))

    def drain(self) -> Iterator[dict[str, Any]]:
        """Deliver until the ingest queue is empty (parts of large objects come back on it),
        one message per invocation like the deployed event source; yields each response."""
        while messages := self.receive(self.queue_url):
            for message in messages:
                yield self.deliver([message])

    def dispatch(self, **event: Any) -> dict[str, Any]:
        """The dispatch function: requests for metering runs on the meter queue."""
        return dict(self.dispatch_app.handler(event, Context("dispatch")))

    def work(
        self, raise_errors: bool = True, context: Callable[[str], Context] | None = None
    ) -> list[dict[str, Any]]:
        """Hand the meter queue's requests to the meter function, one per invocation as its
        event source does (a tenant's requests one at a time, in order), until the queue is
        empty; after each, the ledger takes what the run published. A failed request is
        received again (as after its visibility timeout) and, after the redrive policy's
        receives, goes to the failure queue; ``raise_errors``: a failure is raised instead
        (the request stays queued). ``context``: the Lambda context of an invocation for a
        tenant. Returns the runs' results."""
        results: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(
            QueueUrl=self.meter_url,
            MaxNumberOfMessages=1,
            AttributeNames=["All"],
            VisibilityTimeout=0,  # a request not deleted is received again
        ).get("Messages", []):
            (message,) = messages
            tenant = json.loads(message["Body"])["subscription_id"]
            ran = len(self.runs)
            try:
                response = self.meter_app.handler(
                    sqs_event([message], self.meter_arn),
                    context(tenant) if context else Context("meter"),
                )
            except Exception:
                if raise_errors:
                    raise
                response = {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
            finally:
                self.confirm()
            results += [r.as_json() for r in self.runs[ran:]]
            if not response["batchItemFailures"]:
                self._delete(self.meter_url, message)
            elif raise_errors:
                raise RuntimeError(f"metering failed for {tenant}")
            elif int(message["Attributes"]["ApproximateReceiveCount"]) >= self.max_meter_receives:
                self._dead_letter(message)
        return results

    def _delete(self, url: str, message: MessageTypeDef) -> None:
        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _dead_letter(self, message: MessageTypeDef) -> None:
        """The redrive policy: a request that failed its last receive to the failure queue."""
        self._delete(self.meter_url, message)
        attributes = message["Attributes"]
        self.sqs.send_message(
            QueueUrl=self.meter_dead_url,
            MessageBody=message["Body"],
            MessageGroupId=attributes["MessageGroupId"],
            MessageDeduplicationId=attributes["MessageDeduplicationId"],
        )

    def meter(self, **event: Any) -> dict[str, Any]:
        """The dispatch, then the meter queue worked until empty: ``{"as_of", "results"}``;
        a failed run raises (its request stays on the queue)."""
        dispatched = self.dispatch(**event)
        return {"as_of": dispatched["as_of"], "results": self.work()}

    def confirm(self) -> None:
        """Hand the ledger queue's messages to the ledger handler, ten per invocation; a
        failed record (every record of an invocation that raised) is queued again, as after
        its visibility timeout, five times at most (then it is kept in ``ledger_dead``, as
        the redrive policy would)."""
        tries: Counter[str] = Counter()
        while messages := self.receive(self.ledger_url):
            for start in range(0, len(messages), 10):
                batch = messages[start : start + 10]
                event = sqs_event(batch, self.ledger_arn)
                try:
                    response = self.ledger.handler(event, Context("ledger"))
                    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
                except Exception:  # every record failed (Powertools raises): all come back
                    failed = {m["MessageId"] for m in batch}
                for m in batch:
                    if m["MessageId"] not in failed:
                        continue
                    tries[m["Body"]] += 1
                    if tries[m["Body"]] < 5:
                        self.sqs.send_message(QueueUrl=self.ledger_url, MessageBody=m["Body"])
                    else:
                        self.ledger_dead.append(m["Body"])

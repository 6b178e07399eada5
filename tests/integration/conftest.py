"""A moto account with the pipeline's resources, and drivers for the real handlers."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from qlumeter.pipeline.dynamo import TABLES, bind

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "OBSERVATIONS_TABLE": "t-observations",
    "FILES_TABLE": "t-files",
    "USAGE_TABLE": "t-usage",
    "SUBSCRIPTIONS_TABLE": "t-subscriptions",
    "IDEMPOTENCY_TABLE": "t-idempotency",
    "STATE_BUCKET": "t-state",
    "METER_FUNCTION_NAME": "t-meter",
    "POWERTOOLS_SERVICE_NAME": "qlumeter",
    "POWERTOOLS_METRICS_NAMESPACE": "qlumeter",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
INVENTORY_BUCKET = "t-inventory"


@dataclass
class Context:
    """The parts of a Lambda context the handlers use."""

    function_name: str
    memory_limit_in_mb: int = 1769
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 600_000


class RecordingTrigger:
    """Stands in for the asynchronous invoke of the meter function."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def request(self, tenant: str, as_of: Any) -> None:
        self.requests.append((tenant, str(as_of)))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
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


class Pipeline:
    """Drives the deployed shape in process: bucket -> queue -> ingest -> meter -> SNS."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        for bucket in (INVENTORY_BUCKET, ENV["STATE_BUCKET"]):
            self.s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
        self.s3.put_bucket_versioning(
            Bucket=INVENTORY_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        self.queue_url = self.sqs.create_queue(QueueName="t-ingest")["QueueUrl"]
        self.queue_arn = self._arn(self.queue_url)
        monkeypatch.setenv("INGEST_QUEUE_URL", self.queue_url)
        self.s3.put_bucket_notification_configuration(
            Bucket=INVENTORY_BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": self.queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {"FilterRules": [{"Name": "prefix", "Value": "inventory/"}]}
                        },
                    }
                ]
            },
        )
        self.topic_arn = self.sns.create_topic(Name="t-usage")["TopicArn"]
        self.consumer_url = self.subscribe_queue("t-consumer")
        bind({name: ENV[f"{name.upper()}_TABLE"] for name in TABLES}, region=REGION)
        for model in TABLES.values():
            model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        self.ddb.create_table(
            TableName=ENV["IDEMPOTENCY_TABLE"],
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        )
        self.ingest = self._load("functions.ingest.app")
        self.meter_app = self._load("functions.meter.app")
        self.admin = self._load("functions.admin.app")
        self.trigger = RecordingTrigger()
        self.ingest.service.trigger = self.trigger

    def _arn(self, url: str) -> str:
        return str(
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        )

    def subscribe_queue(self, name: str, filter_policy: dict[str, Any] | None = None) -> str:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
        self.sns.subscribe(
            TopicArn=self.topic_arn, Protocol="sqs", Endpoint=self._arn(url), Attributes=attributes
        )
        return str(url)

    @staticmethod
    def _load(name: str) -> ModuleType:
        module = importlib.import_module(name)
        return importlib.reload(module)  # module state is built against this moto account

    # -- driving -----------------------------------------------------------------------------

    def put_subscription(self, subscription: dict[str, Any]) -> dict[str, Any]:
        event = {"action": "put", "subscription": subscription}
        return dict(self.admin.handler(event, Context("admin")))

    def upload(self, root: Path) -> list[str]:
        """Put every file under ``root/inventory`` as an object; returns the keys."""
        keys = []
        for path in sorted((root / "inventory").rglob("*")):
            if path.is_file():
                key = path.relative_to(root).as_posix()
                self.s3.put_object(Bucket=INVENTORY_BUCKET, Key=key, Body=path.read_bytes())
                keys.append(key)
        return keys

    def receive(self, url: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return messages
            messages.extend(batch)
            for m in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def deliver(self, messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Hand the queue's notifications (or the given ones) to the ingest handler."""
        messages = self.receive(self.queue_url) if messages is None else messages
        if not messages:
            return {"batchItemFailures": []}
        return dict(self.ingest.handler(sqs_event(messages, self.queue_arn), Context("ingest")))

    def meter(self, **event: Any) -> dict[str, Any]:
        return dict(self.meter_app.handler(event, Context("meter")))

    def published(self, url: str | None = None) -> list[dict[str, Any]]:
        """SNS messages delivered to a subscribed queue: body plus ``_attributes``."""
        out = []
        for m in self.receive(url or self.consumer_url):
            envelope = json.loads(m["Body"])
            body = json.loads(envelope["Message"])
            body["_attributes"] = {
                k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()
            }
            out.append(body)
        return out


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        topic = boto3.client("sns", region_name=REGION).create_topic(Name="t-usage")["TopicArn"]
        monkeypatch.setenv("TOPIC_ARN", topic)
        yield Pipeline(monkeypatch)

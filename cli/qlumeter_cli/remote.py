"""A deployed stack (or any AWS-compatible endpoint) driven like the local one: for
``qlumeter run --endpoint-url/--profile``. Names come from the stack's outputs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from qlumeter.config import Subscription
from qlumeter.paths import parse_key
from qlumeter.pipeline.dynamo import DynamoStore, bind
from qlumeter.pipeline.ingest import INVENTORY_PREFIX, QUARANTINE_PREFIX

from .run import Progress, run_stack
from .stack import Consumer

DEFAULT_STACK = "qlumeter-dev"
POLL_SECONDS = 2.0
INGEST_TIMEOUT = 1800.0  # a large file may take several 15-minute parts
METER_TIMEOUT = 3600.0  # a long run goes on over several 15-minute invocations
CLOCK_SKEW = timedelta(minutes=1)  # between this machine and the stack's


def stack_outputs(
    session: boto3.Session, stack_name: str, endpoint_url: str | None
) -> dict[str, str]:
    """A deployed stack's outputs by key (the names of its bucket, tables, functions)."""
    cloudformation = session.client("cloudformation", endpoint_url=endpoint_url)
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def invoke(lambda_: Any, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A deployed function's answer to ``event`` (synchronous); its failure raises."""
    response = lambda_.invoke(FunctionName=function_name, Payload=json.dumps(event).encode())
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise RuntimeError(f"{function_name} failed: {payload}")
    return dict(payload)


def fetch_tenant(
    tenant: str,
    as_of: date,
    into: Path,
    stack_name: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
) -> dict[str, Any]:
    """A tenant's stored subscription (the admin function's ``get``) and its inventory
    files up to ``as_of``, copied from the stack's bucket under ``into`` in the bucket's
    layout: what ``qlumeter whatif`` meters locally for a deployed stack."""
    session = boto3.Session(profile_name=profile, region_name=region)
    outputs = stack_outputs(session, stack_name or DEFAULT_STACK, endpoint_url)
    lambda_ = session.client("lambda", endpoint_url=endpoint_url)
    event = {"action": "get", "subscription_id": tenant}
    found = invoke(lambda_, outputs["AdminFunctionName"], event)
    if not found.get("ok"):
        raise ValueError(f"no subscription {tenant} in the stack: {found.get('error', 'none')}")
    s3 = session.client("s3", endpoint_url=endpoint_url)
    bucket = outputs["InventoryBucketName"]
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{INVENTORY_PREFIX}tenant={tenant}/"
    )
    for page in pages:
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if parse_key(key.removeprefix(INVENTORY_PREFIX)).day > as_of:
                continue
            target = into / key
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
    return dict(found["subscription"])


class RemoteStack(Consumer):
    """The deployed functions, reached through their bucket, tables, topic and APIs."""

    def __init__(
        self, session: boto3.Session, stack_name: str, endpoint_url: str | None = None
    ) -> None:
        self.outputs = stack_outputs(session, stack_name, endpoint_url)
        self.s3 = session.client("s3", endpoint_url=endpoint_url)
        self.sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.sns = session.client("sns", endpoint_url=endpoint_url)
        self.lambda_ = session.client("lambda", endpoint_url=endpoint_url)
        self.inventory_bucket = self.outputs["InventoryBucketName"]
        self.topic_arn = self.outputs["TopicArn"]
        bind(
            {
                name: self.outputs[f"{name.title()}TableName"]
                for name in ("observations", "files", "usage", "subscriptions")
            },
            region=session.region_name,
            host=endpoint_url,
        )
        name = f"qlumeter-run-{int(time.time())}"
        self.consumer_url = str(self.sqs.create_queue(QueueName=name)["QueueUrl"])
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.consumer_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": self.topic_arn}},
                }
            ],
        }
        self.sqs.set_queue_attributes(
            QueueUrl=self.consumer_url, Attributes={"Policy": json.dumps(policy)}
        )
        self.subscription_arn = self.sns.subscribe(
            TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        self.uploaded: list[str] = []

    def close(self) -> None:
        """Remove the run's own queue and subscription."""
        self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
        self.sqs.delete_queue(QueueUrl=self.consumer_url)

    def _invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        return invoke(self.lambda_, self.outputs[function], event)

    def put_subscription(self, subscription: dict[str, Any]) -> dict[str, Any]:
        result = self._invoke("AdminFunctionName", {"action": "put", "subscription": subscription})
        if not result.get("ok"):
            raise ValueError(f"subscription refused: {result.get('error')}")
        return result

    def upload_file(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.inventory_bucket, Key=key, Body=body)
        self.uploaded.append(key)

    def drain(self) -> Iterator[str]:
        """Wait for the deployed ingest to manifest (or quarantine) every uploaded file."""
        pending = set(self.uploaded)
        deadline = time.monotonic() + INGEST_TIMEOUT
        store = DynamoStore()
        while pending:
            for key in sorted(pending):
                if self._done(store, key):
                    pending.discard(key)
                    yield key
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} files not ingested, e.g. {min(pending)}")
            if pending:
                time.sleep(POLL_SECONDS)
        self.uploaded.clear()

    def _done(self, store: DynamoStore, key: str) -> bool:
        """Quarantined (refused or unreadable), or manifested as read."""
        quarantined = self.s3.list_objects_v2(
            Bucket=self.inventory_bucket, Prefix=f"{QUARANTINE_PREFIX}{key}", MaxKeys=1
        )
        if quarantined.get("KeyCount"):
            return True
        ref = parse_key(key.removeprefix(INVENTORY_PREFIX))
        return any(
            m.ref.key == ref.key and m.status in ("ok", "unreadable")
            for m in store.manifests(ref.tenant, ref.day, ref.day)
        )

    def meter(self, **event: Any) -> dict[str, Any]:
        """Ask the dispatch for a run of one tenant as of a day, and wait until a run of it
        that started after the request has finished (it may take several invocations)."""
        asked = datetime.now(UTC) - CLOCK_SKEW
        answer = self._invoke("DispatchFunctionName", event)
        deadline = time.monotonic() + METER_TIMEOUT
        store = DynamoStore()
        while True:
            state = store.get_state(event["subscription_id"])
            if state.run is None and state.last_run_at and state.last_run_at >= asked:
                return answer
            if time.monotonic() > deadline:
                raise TimeoutError(f"no run of {event['subscription_id']} finished in time")
            time.sleep(POLL_SECONDS)


def run_remote(
    sub: Subscription,
    root: Path,
    as_of: date,
    stack_name: str | None,
    profile: str | None,
    region: str | None,
    endpoint_url: str | None,
    progress: Progress,
) -> dict[str, Any]:
    """``qlumeter run`` against a deployed stack; the run's queue is removed afterwards."""
    session = boto3.Session(profile_name=profile, region_name=region)
    stack = RemoteStack(session, stack_name or DEFAULT_STACK, endpoint_url)
    try:
        return run_stack(stack, sub, root, as_of, progress)
    finally:
        stack.close()

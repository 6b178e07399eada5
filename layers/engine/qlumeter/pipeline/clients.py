"""S3, SNS and SQS behind the ``Objects``, ``Publisher``, ``PartQueue`` and ``MeterQueue``
ports."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from ..publishing import EventType
from .ports import PublishRejected
from .ranges import Part
from .requests import MeterRequest

if TYPE_CHECKING:  # the stubs are a development dependency only
    from types_boto3_s3 import S3Client
    from types_boto3_s3.type_defs import CopySourceTypeDef, GetObjectRequestTypeDef
    from types_boto3_sns import SNSClient
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

PART_KEY = "qlumeter_part"  # marks a part message on the ingest queue


class S3Objects:
    """``Objects`` on an injected boto3 S3 client."""

    def __init__(self, client: S3Client) -> None:
        self.client = client

    def open(self, bucket: str, key: str, version: str | None) -> IO[bytes]:
        """The object's body as a stream (never read whole into memory)."""
        request: GetObjectRequestTypeDef = {"Bucket": bucket, "Key": key}
        if version:
            request["VersionId"] = version
        return cast(IO[bytes], self.client.get_object(**request)["Body"])

    def open_range(
        self, bucket: str, key: str, version: str | None, start: int, end: int
    ) -> IO[bytes]:
        """Bytes ``[start, end)`` of the object as a stream."""
        request: GetObjectRequestTypeDef = {
            "Bucket": bucket,
            "Key": key,
            "Range": f"bytes={start}-{end - 1}",
        }
        if version:
            request["VersionId"] = version
        return cast(IO[bytes], self.client.get_object(**request)["Body"])

    def put(self, bucket: str, key: str, body: bytes | IO[bytes]) -> None:
        """Bytes, or a seekable stream (a spooled file) that botocore reads in chunks."""
        self.client.put_object(Bucket=bucket, Key=key, Body=body)

    def get(self, bucket: str, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(key) from None

    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)

    def copy(self, bucket: str, key: str, version: str | None, target_key: str) -> None:
        source: CopySourceTypeDef = {"Bucket": bucket, "Key": key}
        if version:
            source["VersionId"] = version
        self.client.copy_object(Bucket=bucket, Key=target_key, CopySource=source)


class SqsParts:
    """``PartQueue`` on the ingest queue itself: each part is one message."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self.client, self.queue_url = client, queue_url

    def send(self, parts: list[Part]) -> None:
        for first in range(0, len(parts), 10):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(part.index), "MessageBody": json.dumps({PART_KEY: asdict(part)})}
                for part in parts[first : first + 10]
            ]
            failed = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if failed.get("Failed"):
                raise RuntimeError(f"parts not queued: {failed['Failed']}")


class SnsPublisher:
    """``Publisher`` on an injected boto3 SNS client: the message attributes
    ``subscription_id`` and ``event_type`` let consumers filter. A client error (4xx, after
    botocore's retries: throttled, invalid) is a refusal; a server error, a timeout or a
    dropped connection is not (SNS may have taken the message) and propagates as it is."""

    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self.client, self.topic_arn = client, topic_arn

    def publish(self, message: dict[str, Any], event_type: EventType, subscription_id: str) -> None:
        try:
            self.client.publish(
                TopicArn=self.topic_arn,
                Message=json.dumps(message),
                MessageAttributes={
                    "subscription_id": {"DataType": "String", "StringValue": subscription_id},
                    "event_type": {"DataType": "String", "StringValue": event_type},
                },
            )
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500:
                raise PublishRejected(str(exc)) from exc
            raise


class SqsMeterQueue:
    """``MeterQueue`` on the meter queue (SQS FIFO): the tenant is the message group, each
    request brings its deduplication id. Entries SQS refuses are sent again a few times;
    then the call fails (its caller is retried: nothing is lost)."""

    ATTEMPTS = 4

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self.client, self.queue_url = client, queue_url

    def send(self, requests: list[MeterRequest]) -> None:
        for first in range(0, len(requests), 10):  # SQS's batch limit
            batch = {str(i): r for i, r in enumerate(requests[first : first + 10])}
            for _ in range(self.ATTEMPTS):
                entries: list[SendMessageBatchRequestEntryTypeDef] = [
                    {
                        "Id": key,
                        "MessageBody": request.body(),
                        "MessageGroupId": request.subscription_id,
                        "MessageDeduplicationId": request.deduplication_id(),
                    }
                    for key, request in batch.items()
                ]
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
                batch = {f["Id"]: batch[f["Id"]] for f in answer.get("Failed", [])}
                if not batch:
                    break
            if batch:
                raise RuntimeError(f"meter requests not queued: {sorted(batch)}")

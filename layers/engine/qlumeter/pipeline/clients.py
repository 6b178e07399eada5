"""S3, SNS and SQS behind the ``Objects``, ``Publisher``, ``PartQueue`` and ``MeterQueue``
ports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from ..publishing import EventType, encode
from ..reader import UnreadableFile
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


#: GetObject's answers that no retry changes: the object is under a KMS key the function
#: cannot use (or a disabled one), or archived.
UNREADABLE_OBJECT = ("AccessDenied", "InvalidObjectState", "KMS.")


class S3Objects:
    """``Objects`` on an injected boto3 S3 client."""

    def __init__(self, client: S3Client) -> None:
        self.client = client

    def open(self, bucket: str, key: str, version: str | None) -> IO[bytes]:
        """The object's body as a stream (never read whole into memory); ``UnreadableFile``
        when S3 refuses it for good (``UNREADABLE_OBJECT``)."""
        return self._body({"Bucket": bucket, "Key": key}, version)

    def open_range(
        self, bucket: str, key: str, version: str | None, start: int, end: int
    ) -> IO[bytes]:
        """Bytes ``[start, end)`` of the object as a stream."""
        return self._body(
            {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}, version
        )

    def _body(self, request: GetObjectRequestTypeDef, version: str | None) -> IO[bytes]:
        if version:
            request["VersionId"] = version
        try:
            return cast(IO[bytes], self.client.get_object(**request)["Body"])
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if not code.startswith(UNREADABLE_OBJECT):
                raise
            raise UnreadableFile(
                f"S3 refused to read the object: {code} {error.get('Message', '')}".rstrip()
            ) from None

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


SQS_BATCH_ENTRIES = 10  # SendMessageBatch's limits: entries,
SQS_BATCH_BYTES = 1 << 20  # and bytes of all the entries' bodies together


def sqs_batches(bodies: list[str]) -> Iterator[list[str]]:
    """Consecutive bodies in batches SendMessageBatch takes (a part's body is a few hundred
    bytes: its header is named by its length, never copied)."""
    batch: list[str] = []
    size = 0
    for body in bodies:
        length = len(body.encode())
        if batch and (len(batch) == SQS_BATCH_ENTRIES or size + length > SQS_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += length
    if batch:
        yield batch


class SqsParts:
    """``PartQueue`` on the ingest queue itself: each part is one message."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self.client, self.queue_url = client, queue_url

    def send(self, parts: list[Part]) -> None:
        bodies = [json.dumps({PART_KEY: asdict(part)}) for part in parts]
        for batch in sqs_batches(bodies):
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)
            ]
            failed = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if failed.get("Failed"):
                raise RuntimeError(f"parts not queued: {failed['Failed']}")


#: SNS errors that the same message meets again whatever the retry (invalid, too long).
REFUSED_FOR_GOOD = frozenset({"InvalidParameter", "InvalidParameterValue"})


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
                Message=encode(message),
                MessageAttributes={
                    "subscription_id": {"DataType": "String", "StringValue": subscription_id},
                    "event_type": {"DataType": "String", "StringValue": event_type},
                },
            )
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) < 500:
                code = exc.response.get("Error", {}).get("Code", "")
                raise PublishRejected(str(exc), permanent=code in REFUSED_FOR_GOOD) from exc
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

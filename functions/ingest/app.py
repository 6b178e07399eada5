"""Ingest function: S3 notifications delivered by SQS -> rows, manifests, rejects.

Each S3 object version is ingested once (idempotency on DynamoDB); a failed record is
reported back to SQS (partial batch response) and retried, then dead-lettered.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from qlumeter.pipeline.clients import (
    PART_KEY,
    S3Objects,
    SnsPublisher,
    SqsMeterQueue,
    SqsParts,
)
from qlumeter.pipeline.dynamo import DynamoStore, bind
from qlumeter.pipeline.ingest import Ingest, IngestResult, ObjectVersion
from qlumeter.pipeline.ranges import Part
from qlumeter.pipeline.settings import IngestSettings

settings = IngestSettings.from_env()
bind(settings.tables())
logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)
idempotency = IdempotencyConfig(expires_after_seconds=7 * 24 * 3600)
service = Ingest(
    DynamoStore(),
    S3Objects(boto3.client("s3")),
    SnsPublisher(boto3.client("sns"), settings.TOPIC_ARN),
    SqsMeterQueue(boto3.client("sqs"), settings.METER_QUEUE_URL),
    SqsParts(boto3.client("sqs"), settings.INGEST_QUEUE_URL),
    settings.SPLIT_BYTES,
    settings.PART_BYTES,
)


persistence = DynamoDBPersistenceLayer(table_name=settings.IDEMPOTENCY_TABLE)


def _reported(result: IngestResult, message: str) -> dict[str, Any]:
    """Log and count one ingest result; its dict is what idempotency stores."""
    logger.info(message, extra=asdict(result))
    metrics.add_metric(name="RowsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.rejected)
    metrics.add_metric(name="EntitiesTouched", unit=MetricUnit.Count, value=result.entities)
    if result.status in ("unreadable", "refused"):
        metrics.add_metric(name="FilesQuarantined", unit=MetricUnit.Count, value=1)
    return asdict(result)


@idempotent_function(
    data_keyword_argument="delivered", persistence_store=persistence, config=idempotency
)
def ingest_object(delivered: dict[str, Any]) -> dict[str, Any]:
    """Ingest one object version; a repeated delivery returns the first result."""
    return _reported(service.ingest(ObjectVersion(**delivered)), "ingested")


@idempotent_function(
    data_keyword_argument="part", persistence_store=persistence, config=idempotency
)
def ingest_part(part: dict[str, Any]) -> dict[str, Any]:
    """Ingest one byte range of a large object; a repeated delivery is skipped."""
    return _reported(service.ingest_part(Part(**part)), "part ingested")


def record_handler(record: SQSRecord) -> None:
    logger.set_correlation_id(record.message_id)
    body = record.json_body
    if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
        return
    if isinstance(body, dict) and PART_KEY in body:
        ingest_part(part=body[PART_KEY])
        return
    for s3_record in S3Event(body).records:
        obj = s3_record.s3.get_object
        delivered = ObjectVersion.from_notification(
            s3_record.s3.bucket.name,
            obj.key,
            obj.get("versionId"),
            obj.get("sequencer"),
            obj.get("eTag"),
            obj.get("size"),
        )
        ingest_object(delivered=asdict(delivered))


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    # rows are read until the reserve before the invocation's end, then what is left is
    # quarantined (an invocation given less than the reserve has no deadline)
    left = context.get_remaining_time_in_millis() / 1000 - service.limits.reserve_seconds
    service.deadline = service.clock() + left if left > 0 else None
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

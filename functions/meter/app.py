"""Meter function: one tenant's metering run per request from the meter queue (SQS FIFO,
the tenant as message group): it publishes usage summaries, closed intervals, threshold
alerts and corrections. A run that would outlast the invocation saves its progress and
queues its continuation; a request that keeps failing goes to the tenant's entry in the
failure queue, and the other tenants go on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from qlumeter.pipeline.clients import S3Objects, SnsPublisher, SqsMeterQueue
from qlumeter.pipeline.dynamo import DynamoStore, bind
from qlumeter.pipeline.requests import MeterRequest
from qlumeter.pipeline.settings import MeterSettings
from qlumeter.pipeline.usage import MeterService

settings = MeterSettings.from_env()
bind(settings.tables())
logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = SqsFifoPartialProcessor()
queue = SqsMeterQueue(boto3.client("sqs"), settings.METER_QUEUE_URL)
service = MeterService(
    DynamoStore(),
    S3Objects(boto3.client("s3")),
    SnsPublisher(boto3.client("sns"), settings.TOPIC_ARN),
    settings.STATE_BUCKET,
    reserve=timedelta(seconds=settings.RESERVE_SECONDS),
)


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    try:
        meter_request(record, lambda_context)
    except Exception:
        logger.exception("metering failed")
        metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
        raise


def meter_request(record: SQSRecord, lambda_context: LambdaContext) -> None:
    """Run the request; queue its continuation when the run goes on."""
    request = MeterRequest.model_validate_json(record.body)
    logger.append_keys(subscription_id=request.subscription_id, reason=request.reason)
    remaining = timedelta(milliseconds=lambda_context.get_remaining_time_in_millis())
    deadline = service.clock() + remaining  # a tenant's lease ends with the invocation
    result = service.run(
        request.subscription_id, request.as_of, deadline, request.reason, request.requested_at
    )
    for note in result.notes:
        logger.warning(note)
        metrics.add_metric(name="StatesRecomputed", unit=MetricUnit.Count, value=1)
    for refused in result.refused:
        logger.error(f"message refused by the topic: {refused}")
        metrics.add_metric(name="MessagesRefused", unit=MetricUnit.Count, value=1)
    if result.status == "continued":
        assert result.as_of is not None
        queue.send(
            [
                MeterRequest(
                    subscription_id=request.subscription_id,
                    as_of=result.as_of,
                    reason="continue",
                    requested_at=datetime.now(UTC),
                    tag=lambda_context.aws_request_id,
                )
            ]
        )
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=len(result.published))
    for code, qlus in result.qlus.items():
        metrics.add_metric(name=f"QLUs.{code}", unit=MetricUnit.Count, value=float(qlus))
    logger.info(result.status, extra={"result": result.as_json()})


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

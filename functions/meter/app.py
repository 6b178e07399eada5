"""Meter function: the daily schedule (or a late-data request) meters tenants and
publishes usage summaries, closed intervals, threshold alerts and corrections."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import BaseModel, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from qlumeter.config import TenantId
from qlumeter.pipeline.clients import S3Objects, SnsPublisher
from qlumeter.pipeline.dynamo import DynamoStore, bind
from qlumeter.pipeline.settings import MeterSettings
from qlumeter.pipeline.usage import MeterService

settings = MeterSettings.from_env()
bind(settings.tables())
logger = Logger()
tracer = Tracer()
metrics = Metrics()
store = DynamoStore()
service = MeterService(
    store,
    S3Objects(boto3.client("s3")),
    SnsPublisher(boto3.client("sns"), settings.TOPIC_ARN),
    settings.STATE_BUCKET,
)


class MeterRequest(BaseModel):
    """The schedule's input, or a late-data request from ingest."""

    subscription_id: TenantId | None = None
    as_of: date | None = None
    scheduled_time: datetime | None = None
    reason: str = "schedule"

    def day(self) -> date:
        """Explicit ``as_of``, else the day before the scheduled time (a complete day)."""
        if self.as_of:
            return self.as_of
        return ((self.scheduled_time or datetime.now(UTC)) - timedelta(days=1)).date()


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=MeterRequest)
def handler(event: MeterRequest, context: LambdaContext) -> dict[str, Any]:
    as_of = event.day()
    remaining = timedelta(milliseconds=context.get_remaining_time_in_millis())
    deadline = datetime.now(UTC) + remaining  # a tenant's lease ends with the invocation
    tenants = [event.subscription_id] if event.subscription_id else store.subscription_ids()
    results, failed = [], []
    for tenant in tenants:
        logger.append_keys(subscription_id=tenant)
        try:
            result = service.run(tenant, as_of, deadline)
        except Exception:
            logger.exception("metering failed")
            failed.append(tenant)
            continue
        results.append(result.as_json())
        metrics.add_metric(
            name="EventsPublished", unit=MetricUnit.Count, value=len(result.published)
        )
        for code, qlus in result.qlus.items():
            metrics.add_metric(name=f"QLUs.{code}", unit=MetricUnit.Count, value=float(qlus))
        logger.info("metered", extra={"result": result.as_json()})
    if failed:
        raise RuntimeError(f"metering failed for: {', '.join(failed)}")
    return {"as_of": as_of.isoformat(), "results": results}

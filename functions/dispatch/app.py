"""Dispatch function: the daily schedule asks for a metering run of every tenant, or a
caller for one tenant and day; each request goes to the meter queue, where every tenant is
its own message group (one worker at a time per tenant, many tenants at once)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Self

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import BaseModel, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import model_validator

from qlumeter.config import TenantId
from qlumeter.pipeline.clients import SqsMeterQueue
from qlumeter.pipeline.dynamo import DynamoStore, bind
from qlumeter.pipeline.requests import MeterRequest, scheduled_day
from qlumeter.pipeline.settings import DispatchSettings

settings = DispatchSettings.from_env()
bind(settings.tables())
logger = Logger()
tracer = Tracer()
metrics = Metrics()
store = DynamoStore()
queue = SqsMeterQueue(boto3.client("sqs"), settings.METER_QUEUE_URL)


class DispatchRequest(BaseModel):
    """The schedule's input (``scheduled_time``: every tenant, the day before), or a run of
    one tenant (or of every tenant) as of a day."""

    scheduled_time: datetime | None = None
    subscription_id: TenantId | None = None
    as_of: date | None = None

    @model_validator(mode="after")
    def _one_day(self) -> Self:
        if (self.scheduled_time is None) == (self.as_of is None):
            raise ValueError("give scheduled_time (the schedule) or as_of, not both")
        return self


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=DispatchRequest)
def handler(event: DispatchRequest, context: LambdaContext) -> dict[str, Any]:
    now = datetime.now(UTC)
    if event.scheduled_time is not None:
        as_of, reason, tag = scheduled_day(event.scheduled_time), "schedule", ""
    else:
        assert event.as_of is not None
        as_of, reason, tag = event.as_of, "request", context.aws_request_id
    tenants = [event.subscription_id] if event.subscription_id else store.subscription_ids()
    queue.send(
        [
            MeterRequest(
                subscription_id=tenant, as_of=as_of, reason=reason, requested_at=now, tag=tag
            )
            for tenant in tenants
        ]
    )
    metrics.add_metric(name="TenantsDispatched", unit=MetricUnit.Count, value=len(tenants))
    logger.info("dispatched", extra={"as_of": as_of.isoformat(), "tenants": len(tenants)})
    return {"as_of": as_of.isoformat(), "reason": reason, "tenants": len(tenants)}

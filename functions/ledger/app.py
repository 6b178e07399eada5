"""Ledger function: the topic's usage messages, delivered by SQS, recorded as receipts
(subscription, as-of day, event type, revision). A meter run that died after handing a
message to the topic finds its receipt and does not publish it again."""

from __future__ import annotations

from datetime import date
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser import BaseModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ConfigDict, Field

from qlumeter.config import TenantId
from qlumeter.pipeline.dynamo import DynamoStore, bind
from qlumeter.pipeline.settings import LedgerSettings
from qlumeter.publishing import UsageEvent

settings = LedgerSettings.from_env()
bind(settings.tables())
logger = Logger()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS)
store = DynamoStore()


class UsageMessage(BaseModel):
    """What identifies a usage message (the raw SNS message body, schema v1)."""

    model_config = ConfigDict(extra="ignore")

    subscription_id: TenantId
    as_of: date
    event_type: UsageEvent
    revision: int = Field(ge=1)


def record_handler(record: SQSRecord) -> None:
    message = UsageMessage.model_validate_json(record.body)
    store.put_receipt(message.subscription_id, message.as_of, message.event_type, message.revision)
    logger.info("receipt", extra=message.model_dump(mode="json"))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)

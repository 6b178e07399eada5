"""Admin function: validate, store and read subscriptions."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import BaseModel, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from qlumeter.config import ConfigError, parse_subscription
from qlumeter.paths import tenant_problem
from qlumeter.pipeline.dynamo import DynamoStore, bind
from qlumeter.pipeline.settings import AdminSettings

settings = AdminSettings.from_env()
bind(settings.tables())
logger = Logger()
tracer = Tracer()
store = DynamoStore()


class AdminRequest(BaseModel):
    action: Literal["put", "validate", "get"]
    subscription: dict[str, Any] | None = None
    subscription_id: str | None = None


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=AdminRequest)
def handler(event: AdminRequest, context: LambdaContext) -> dict[str, Any]:
    if event.action == "get":
        problem = tenant_problem(event.subscription_id) if event.subscription_id else None
        if not event.subscription_id or problem:
            return {"ok": False, "error": f"subscription_id: {problem or 'required'}"}
        found = store.get_subscription(event.subscription_id)
        return {"ok": found is not None, "subscription": found.to_json_dict() if found else None}
    try:
        sub = parse_subscription(event.subscription or {})
    except ConfigError as exc:
        return {"ok": False, "error": str(exc)}
    if event.action == "put":
        store.put_subscription(sub)
        logger.info("subscription stored", extra={"subscription_id": sub.subscription_id})
    return {"ok": True, "subscription": sub.to_json_dict()}

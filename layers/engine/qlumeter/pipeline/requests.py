"""Requests for a metering run of one tenant, queued on the meter queue (SQS FIFO).

The tenant is the message group: the queue hands a tenant's requests to one worker at a
time, in order, while other tenants' requests go to other workers. Each request carries
its deduplication id, so a request sent twice within SQS's five-minute window is queued
once:

- ``schedule``: one per tenant and day (a schedule delivered twice);
- ``late_data``: one per tenant, day and five minutes, whatever the number of late files
  (and a worker skips a late-data request that a run started after it already covered);
- ``request``: one per tenant, day and caller request (an operator's or ``qlumeter run``'s);
- ``continue``: a run that saved its progress before its invocation's end asks for the
  next invocation, one per tenant, day and day it goes on from.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import TenantId

Reason = Literal["schedule", "late_data", "request", "continue"]
#: Late files within one such slot (and SQS's deduplication window) make one request.
LATE_DATA_SLOT = timedelta(minutes=5)


class MeterRequest(BaseModel):
    """A metering run asked for: the tenant as of a day, why, when, and a tag that tells
    this request from another of the same tenant, day and reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subscription_id: TenantId
    as_of: date
    reason: Reason
    requested_at: datetime
    tag: str = Field(default="", max_length=40, pattern=r"^[A-Za-z0-9_.-]*$")

    def deduplication_id(self) -> str:
        """At most 128 characters (SQS): tenant (64), day (10), reason and tag."""
        tag = self.tag
        if self.reason == "late_data":
            slot = int(self.requested_at.timestamp() // LATE_DATA_SLOT.total_seconds())
            tag = str(slot)
        return f"{self.subscription_id}:{self.as_of}:{self.reason}:{tag}"

    def body(self) -> str:
        return self.model_dump_json()


def scheduled_day(scheduled_time: datetime) -> date:
    """The day a schedule tick meters: the day before it (a complete day), in UTC."""
    return (scheduled_time.astimezone(UTC) - timedelta(days=1)).date()

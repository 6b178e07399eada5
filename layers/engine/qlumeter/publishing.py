"""What a metering run publishes (pure): the message event types, the days a run
summarizes, and for each day the events to send and the revision they carry.

The pipeline (``pipeline/usage.py``) records and sends what these functions decide; the
ledger accepts ``USAGE_EVENTS``; ``ingest_failed`` is ingest's (``summary.failure_message``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal, Protocol, get_args

from .quality import FORECAST_ALERT, SOURCE_MISSING
from .windows import day_range, interval_of, rolling_start

UsageEvent = Literal["usage_summary", "interval_closed", "threshold_alert", "correction"]
EventType = Literal[UsageEvent, "ingest_failed"]

USAGE_SUMMARY: Final = "usage_summary"  # the first summary of a day, by the run as of it
INTERVAL_CLOSED: Final = "interval_closed"  # an interval's final numbers, once after its end
THRESHOLD_ALERT: Final = "threshold_alert"  # a threshold or plan level newly reached
CORRECTION: Final = "correction"  # a published day's numbers changed (late data)
INGEST_FAILED: Final = "ingest_failed"  # a file refused or unreadable: no usage
#: The usage messages, in the order the ledger's subscription filter lists them.
USAGE_EVENTS: tuple[UsageEvent, ...] = get_args(UsageEvent)
#: Every ``event_type`` of a v1 message (the summary schema's enumeration).
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)
#: Events sent again on a day that has them already (every other one goes out once a day).
REPEATABLE: frozenset[UsageEvent] = frozenset({USAGE_SUMMARY, CORRECTION})
#: SNS's largest message, in bytes: the body and the attributes' names, types and values.
SNS_MESSAGE_BYTES: Final = 262_144
#: The sample sizes a message's alerts are cut to, in turn, when it must shrink to fit.
FIT_SAMPLES: Final = (3, 0)


class MessageTooLarge(ValueError):
    """A message that no cut of its alerts' samples brings within SNS's limit."""


class Record(Protocol):
    """What is stored of the summary last published for a day."""

    @property
    def revision(self) -> int: ...
    @property
    def digest(self) -> str: ...
    @property
    def events(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Outgoing:
    """What a day's summary goes out as: its revision and the events to send, in order."""

    revision: int
    events: tuple[UsageEvent, ...]


def digest(summary: Mapping[str, Any]) -> str:
    """The numbers of a summary (not its time, revision or event type)."""
    numbers = {"products": summary["products"], "total_qlus": summary["total_qlus"]}
    return hashlib.sha256(json.dumps(numbers, sort_keys=True).encode()).hexdigest()


def encode(message: Mapping[str, Any]) -> str:
    """A message's body as the topic receives it."""
    return json.dumps(message)


def message_bytes(message: Mapping[str, Any], event_type: str, subscription_id: str) -> int:
    """What SNS counts against its limit: the body and the two message attributes."""
    attributes = {"subscription_id": subscription_id, "event_type": event_type}
    return len(encode(message).encode()) + sum(
        len(name.encode()) + len("String") + len(value.encode())
        for name, value in attributes.items()
    )


def fit(
    message: dict[str, Any], event_type: str, subscription_id: str, limit: int = SNS_MESSAGE_BYTES
) -> dict[str, Any]:
    """The message within SNS's limit: as it is when it fits, else with the samples of its
    alerts cut (``FIT_SAMPLES``; a cut entry says how many it had in ``sample_size``). The
    alerts of a summary are bounded per kind (``quality.bound_alerts``), so a summary fits
    after the cuts; ``MessageTooLarge`` when a message does not."""
    if message_bytes(message, event_type, subscription_id) <= limit:
        return message
    for keep in FIT_SAMPLES:
        alerts = [
            dict(alert, sample=alert["sample"][:keep], sample_size=len(alert["sample"]))
            if len(alert.get("sample", ())) > keep
            else alert
            for alert in message.get("alerts", [])
        ]
        smaller = dict(message, alerts=alerts)
        if message_bytes(smaller, event_type, subscription_id) <= limit:
            return smaller
    size = message_bytes(message, event_type, subscription_id)
    raise MessageTooLarge(f"{event_type} of {size:,} bytes: over SNS's {limit:,} bytes")


def closes_interval(start: date, day: date, as_of: date) -> bool:
    """Whether ``day`` is the last day of a 15-day interval that ended before ``as_of``."""
    return day < as_of and interval_of(start, day)[1] == day


def days_to_summarize(
    start: date, as_of: date, first_new: date, published: Mapping[date, Record]
) -> list[date]:
    """The days a run as of ``as_of`` summarizes, in order: the as-of day, the published
    days from ``first_new`` (the first day it replayed) on, and the ends of intervals in the
    rolling window whose ``interval_closed`` has not gone out. ``published`` holds the
    window's records."""
    days = {d for d in published if d >= first_new} | {as_of}
    for day in day_range(rolling_start(start, as_of), as_of):
        record = published.get(day)
        if closes_interval(start, day, as_of) and INTERVAL_CLOSED not in (
            record.events if record else ()
        ):
            days.add(day)
    return sorted(days)


def levels(alerts: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """The entitlement thresholds and the plan_cap levels an alert list shows."""
    thresholds = [a["threshold"] for a in alerts if a["type"] == "threshold"]
    plan = {a["measure"]: a["level"] for a in alerts if a["type"] == "plan_cap"}
    return thresholds, plan


def missing_sources(alerts: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sources an alert list says are missing (a bounded entry: those of its sample)."""
    named: set[str] = set()
    for alert in alerts:
        if alert["type"] == SOURCE_MISSING:
            named.update(entry["source"] for entry in alert.get("sample", [alert]))
    return sorted(named)


def projected(alerts: Sequence[Mapping[str, Any]]) -> list[str]:
    """The thresholds an alert list says are projected to be reached (``forecast_alert``)."""
    return sorted({a["threshold"] for a in alerts if a["type"] == FORECAST_ALERT})


def level_crossed(
    alerts: Sequence[Mapping[str, Any]],
    thresholds: Sequence[str],
    plan_levels: Mapping[str, str],
    missing: Sequence[str] = (),
    forecast: Sequence[str] = (),
) -> bool:
    """A threshold or a plan cap level not in force before (``thresholds``,
    ``plan_levels``: reached again after falling below), an own network scanned, a
    source missing that was not before (``missing``), or a threshold projected that was
    not before (``forecast``): a missing source and a projected threshold are told once
    per episode, and again when the episode starts over."""
    now, plan = levels(alerts)
    return (
        bool(set(now) - set(thresholds))
        or any(level > plan_levels.get(name, "") for name, level in plan.items())
        or any(a["type"] == "own_network_scanned" for a in alerts)
        or bool(set(missing_sources(alerts)) - set(missing))
        or bool(set(projected(alerts)) - set(forecast))
    )


def outgoing(
    last: Record | None, numbers: str, *, as_of_day: bool, closes: bool, crossed: bool
) -> Outgoing:
    """The events of one day's summary (``numbers``: its digest) given the record of what
    was published for that day (``last``, None: nothing yet). ``as_of_day``: the day is
    the run's as-of day; ``closes``: it ends an interval (``closes_interval``);
    ``crossed``: the as-of day's alerts crossed a level (``level_crossed``)."""
    changed = last is not None and last.digest != numbers
    events: list[UsageEvent] = []
    if last is None and as_of_day:
        events.append(USAGE_SUMMARY)
    elif changed:
        events.append(CORRECTION)
    if closes:
        events.append(INTERVAL_CLOSED)
    if as_of_day and crossed:
        events.append(THRESHOLD_ALERT)
    sent = last.events if last else ()
    return Outgoing(
        1 if last is None else last.revision + changed,
        tuple(e for e in events if e in REPEATABLE or e not in sent),
    )

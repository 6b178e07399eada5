"""What the pipeline services need from the outside world, as small interfaces.

The DynamoDB, S3, SNS and SQS implementations live in ``dynamo`` and ``clients``;
tests pass fakes or moto-backed ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any, Protocol

from ..catalog import DayValue
from ..config import Subscription
from ..observation import Observation
from ..paths import FileRef
from ..publishing import EventType, UsageEvent
from .ranges import Part
from .requests import MeterRequest


@dataclass(kw_only=True)
class Manifest:
    """One ingested object version: what it gave and whether it counts."""

    ref: FileRef
    version: str
    checksum: str
    rows: int
    accepted: int
    rejected: int
    status: str  # ok | unreadable
    ingested_at: datetime
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    rejects_key: str | None = None
    sequencer: str | None = None  # S3's order of events on one key
    parts: int = 1  # byte ranges ingested separately; status is "partial" until all are in
    entities: int = 0  # entities touched: distinct keys of the accepted rows (parts: summed)

    def supersedes(self, other: Manifest) -> bool:
        """Whether this version comes after ``other`` (sequencers compare when padded)."""
        if self.sequencer is None or other.sequencer is None:
            return True
        width = max(len(self.sequencer), len(other.sequencer))
        return self.sequencer.rjust(width, "0") >= other.sequencer.rjust(width, "0")


@dataclass(frozen=True)
class Head:
    """The meter state a run as of some day saved (its key names the day)."""

    saved: datetime  # when: a file for its days arriving later may be missing from it
    base: date | None  # the checkpoint day the run started from (None: the start)


@dataclass
class RunProgress:
    """A run that saved its progress before its invocation ended: the next invocation goes
    on from ``next_day`` with the meter state stored under ``state_key``. Nothing of it is
    published until its last day is replayed."""

    as_of: date
    started: datetime  # the first invocation's start: the run's view of the files
    first_new: date  # the first day it replays
    base: date | None  # the checkpoint day the state it started from covers (None: start)
    next_day: date
    state_key: str | None = None  # None: nothing saved yet, start over from the checkpoint
    folded: list[str] = field(default_factory=list)  # "key#version" of files arriving after
    # ``started`` (less the margin) that it replayed on a day the checkpoint will hold
    late_basis: tuple[date | None, datetime | None, list[str]] = (None, None, [])
    # the checkpoint (day, too-late time, files) before the run: what it reports as too late
    rows: int = 0
    days: int = 0


@dataclass
class TenantState:
    """Where a tenant's metering stands."""

    tenant: str
    checkpoint_day: date | None = None  # the meter state saved covers days up to here
    checkpoint_key: str | None = None
    checkpoint_at: datetime | None = None  # files for its days arriving later are too late
    checkpoint_files: list[str] = field(default_factory=list)  # "key#version": arrived later,
    # yet folded in (read by the run that took the checkpoint)
    newest_metered: date | None = None
    thresholds: list[str] = field(default_factory=list)  # alert levels in force
    # the heads of the recent days run; the newest is the head to start from
    heads: dict[date, Head] = field(default_factory=dict)
    plan_levels: dict[str, str] = field(default_factory=dict)  # plan_cap levels in force
    missing_sources: list[str] = field(default_factory=list)  # source_missing in force
    forecast: list[str] = field(default_factory=list)  # thresholds of forecast_alert in force
    run: RunProgress | None = None  # a run to go on with
    last_run_at: datetime | None = None  # when the newest finished run started


class Conflict(RuntimeError):
    """A record changed since it was read, or the tenant is leased: another run is at work
    on it."""


class PublishRejected(RuntimeError):
    """The topic answered a publish with an error: the message did not go out.
    ``permanent``: the same message would be refused again (invalid, too long)."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass
class Pending:
    """A message being published, recorded before the topic sees it and cleared once it is
    known to have gone out (the publish returned, or the ledger received it)."""

    event: UsageEvent
    revision: int
    message: dict[str, Any]
    since: datetime | None  # when it was handed to the topic; None: the topic refused it


@dataclass
class Published:
    """The last summary published for one as-of day."""

    as_of: date
    revision: int
    digest: str
    events: list[str] = field(default_factory=list)
    pending: Pending | None = None
    version: int | None = None  # as stored (None: not yet, or written before versions)


class Store(Protocol):
    """The tables: subscriptions, observations, manifests, daily usage, tenant state."""

    def get_subscription(self, tenant: str) -> Subscription | None: ...
    def put_subscription(self, sub: Subscription) -> None: ...
    def subscription_ids(self) -> list[str]: ...
    def write_rows(self, ref: FileRef, version: str, rows: Iterable[Observation]) -> int: ...
    def put_manifest(self, manifest: Manifest) -> None: ...
    def add_part(
        self,
        ref: FileRef,
        version: str,
        rows: int,
        accepted: int,
        rejected: int,
        entities: int,
        index: int,
    ) -> bool: ...
    def fail_parts(self, ref: FileRef, version: str, reason: str) -> None: ...
    def manifests(self, tenant: str, first: date, last: date) -> list[Manifest]: ...
    def rows(self, tenant: str, day: date, versions: dict[str, str]) -> Iterator[Observation]: ...
    def put_daily(self, tenant: str, daily: dict[str, dict[date, DayValue]]) -> None: ...
    def daily(
        self, tenant: str, codes: Iterable[str], first: date, last: date
    ) -> dict[str, dict[date, DayValue]]: ...
    def get_state(self, tenant: str) -> TenantState: ...
    def put_state(self, state: TenantState) -> None: ...
    def published(self, tenant: str, first: date, last: date) -> dict[date, Published]: ...
    def put_published(
        self, tenant: str, record: Published, expected: Published | None
    ) -> Published:
        """Write ``record`` if the stored one is still ``expected`` (None: there is none)
        and return it as stored; otherwise raise ``Conflict``."""

    def lease(self, tenant: str, owner: str, until: datetime, now: datetime) -> bool:
        """Take the tenant for one run until ``until``, unless another run holds it."""

    def release(self, tenant: str, owner: str) -> None: ...
    def put_receipt(self, tenant: str, as_of: date, event: str, revision: int) -> None: ...
    def receipts(self, tenant: str, as_of: date) -> set[tuple[str, int]]: ...


class Objects(Protocol):
    """Object storage: the inventory bucket and the meter's checkpoints."""

    def open(self, bucket: str, key: str, version: str | None) -> IO[bytes]: ...
    def open_range(
        self, bucket: str, key: str, version: str | None, start: int, end: int
    ) -> IO[bytes]: ...
    def put(self, bucket: str, key: str, body: bytes | IO[bytes]) -> None: ...
    def get(self, bucket: str, key: str) -> bytes:
        """The object's bytes; ``KeyError`` when there is none."""

    def delete(self, bucket: str, key: str) -> None: ...
    def copy(self, bucket: str, key: str, version: str | None, target_key: str) -> None: ...


class PartQueue(Protocol):
    """Queues the byte ranges of a large object for separate invocations."""

    def send(self, parts: list[Part]) -> None: ...


class Publisher(Protocol):
    """Publishes a message to the consumers; raises ``PublishRejected`` when the topic
    refused it (any other error leaves open whether it went out)."""

    def publish(
        self, message: dict[str, Any], event_type: EventType, subscription_id: str
    ) -> None: ...


class MeterQueue(Protocol):
    """The meter queue: requests for a metering run, one message group per tenant."""

    def send(self, requests: list[MeterRequest]) -> None: ...

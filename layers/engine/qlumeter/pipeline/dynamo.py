"""The DynamoDB tables behind ``Store``: PynamoDB models, here and nowhere else.

| table | keys | model |
|---|---|---|
| observations | pk = tenant#day#shard (8 shards), sk = file#version#first line | ObservationItem |
| files | tenant, file = day#source#name | FileItem |
| usage | pk = tenant#PRODUCT, sk = day | DailyItem |
| usage | pk = tenant#SUMMARY, sk = as-of day | SummaryItem |
| usage | pk = tenant#SENT, sk = as_of#event_type#revision | ReceiptItem |
| usage | pk = tenant#STATE, sk = state | StateItem |
| usage | pk = tenant#LEASE, sk = lease | LeaseItem |
| subscriptions | subscription_id | SubscriptionItem |

(docs/pipeline.md has the same rows, with what each item holds and how it is used.)

The usage table holds five kinds of record, each a model of its own over the table's keys
(``UsageRecord``): the kind is the partition key's suffix, which every read and write
names, so a query returns one kind and no discriminator attribute is stored. Items keep
the attribute names and text forms the previous release wrote (it needs no migration and
reads back as it was); the summary record adds ``version``, PynamoDB's optimistic lock,
which a record written before it lacks until its next write.
"""

from __future__ import annotations

import json
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, fields, replace
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from pynamodb.attributes import (
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from ..catalog import DayValue
from ..codec import decode, encode
from ..config import Subscription, parse_subscription
from ..observation import Observation
from ..paths import FileRef, parse_key
from .ports import Conflict, Head, Manifest, Pending, Published, RunProgress, TenantState

SHARDS = 8  # observation partitions per tenant and day: no single hot key
RECEIPTS = "SENT"  # the ledger's receipts: pk <tenant>#SENT (the template lets it write only those)
BATCH = 25  # DynamoDB's batch write limit
ROW_RETENTION_DAYS = 120  # rows outlive the late-data window and the 90-day windows
PACK_BYTES = 900  # packed rows per item: with its keys, an item stays under 1 KB


def _pending_text(pending: Pending) -> str:
    since = pending.since.isoformat() if pending.since else None
    return json.dumps(asdict(pending) | {"since": since}, sort_keys=True)


def _pending(text: str | None) -> Pending | None:
    if not text:
        return None
    data = json.loads(text)
    since = datetime.fromisoformat(data["since"]) if data["since"] else None
    return Pending(data["event"], data["revision"], data["message"], since)


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _written(write: Callable[[], object]) -> bool:
    """Make a conditional write: False when its condition failed (any other error raises)."""
    try:
        write()
    except (PutError, UpdateError) as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return False
    return True


class ObservationItem(Model):
    class Meta:
        table_name = "observations"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    row = UnicodeAttribute()
    expires = TTLAttribute()


class FileItem(Model):
    class Meta:
        table_name = "files"

    tenant = UnicodeAttribute(hash_key=True)
    file = UnicodeAttribute(range_key=True)
    key = UnicodeAttribute()
    version = UnicodeAttribute()
    sequencer = UnicodeAttribute(null=True)
    checksum = UnicodeAttribute()
    rows = NumberAttribute()
    accepted = NumberAttribute()
    rejected = NumberAttribute()
    status = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    warnings = UnicodeAttribute(default="[]")  # JSON list
    rejects_key = UnicodeAttribute(null=True)
    ingested_at = UTCDateTimeAttribute()
    parts = NumberAttribute(default=1)
    parts_done = NumberAttribute(default=0)
    parts_seen = UnicodeSetAttribute(null=True)  # the part indexes counted
    entities = NumberAttribute(default=0)


class UsageRecord(Model):
    """The usage table's keys; each kind of record below is a model over them."""

    class Meta:
        table_name = "usage"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class DailyItem(UsageRecord):
    """``tenant#PRODUCT``, day: a product's daily value (exact fractions as text)."""

    value = UnicodeAttribute()
    components = UnicodeAttribute()  # JSON object of fractions


class SummaryItem(UsageRecord):
    """``tenant#SUMMARY``, as-of day: the summary last published for the day."""

    revision = NumberAttribute()
    digest = UnicodeAttribute()
    events = UnicodeAttribute()  # JSON list: the events sent
    pending = UnicodeAttribute(null=True)  # JSON: the message being published
    version = VersionAttribute()  # every write expects the version it read


class StateItem(UsageRecord):
    """``tenant#STATE``, ``state``: where the tenant's metering stands (JSON)."""

    state = UnicodeAttribute()


class LeaseItem(UsageRecord):
    """``tenant#LEASE``, ``lease``: the run that holds the tenant, until when."""

    owner = UnicodeAttribute(attr_name="state")  # the previous release's attribute name
    lease_until = NumberAttribute()  # epoch seconds


class ReceiptItem(UsageRecord):
    """``tenant#SENT``, ``as_of#event_type#revision``: the ledger received that message
    (the template lets the ledger put only these keys)."""


class SubscriptionItem(Model):
    class Meta:
        table_name = "subscriptions"

    subscription_id = UnicodeAttribute(hash_key=True)
    document = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()


#: The model holding each table's keys, by logical table name (the environment names the
#: real tables).
TABLES: dict[str, type[Model]] = {
    "observations": ObservationItem,
    "files": FileItem,
    "usage": UsageRecord,
    "subscriptions": SubscriptionItem,
}
#: Every model, by the logical name of its table.
MODELS: dict[str, tuple[type[Model], ...]] = {
    "observations": (ObservationItem,),
    "files": (FileItem,),
    "usage": (UsageRecord, DailyItem, SummaryItem, StateItem, LeaseItem, ReceiptItem),
    "subscriptions": (SubscriptionItem,),
}


def bind(names: dict[str, str], region: str | None = None, host: str | None = None) -> None:
    """Point each model at its table: ``names`` maps logical names to real ones; ``host``
    is another endpoint (an AWS-compatible service)."""
    for logical, models in MODELS.items():
        for model in models:  # the usage models share their base's Meta
            model.Meta.table_name = names[logical]
            if region:
                model.Meta.region = region
            if host:
                model.Meta.host = host
            model._connection = None  # rebuilt with the new settings


def shard_of(file_key: str, line: int) -> int:
    return zlib.crc32(f"{file_key}#{line}".encode()) % SHARDS


def pack_rows(rows: Iterable[Observation]) -> Iterator[tuple[int, str]]:
    """Consecutive rows packed into items under 1 KB: (first line, ``[[line, row], ...]``).

    A write unit covers a started KB of an item, so packing costs a fraction of a unit
    per row instead of one."""
    parts: list[str] = []
    first, size = 0, 2
    for obs in rows:
        part = f"[{obs.line},{encode(obs)}]"
        if parts and size + len(part.encode()) + 1 > PACK_BYTES:
            yield first, "[" + ",".join(parts) + "]"
            parts, size = [], 2
        if not parts:
            first = obs.line
        parts.append(part)
        size += len(part.encode()) + 1
    if parts:
        yield first, "[" + ",".join(parts) + "]"


def unpack_rows(packed: str) -> Iterator[tuple[int, str]]:
    """The (line, encoded row) pairs of one packed item."""
    for line, row in json.loads(packed):
        yield int(line), json.dumps(row, separators=(",", ":"))


#: Answers to a batch write that a later attempt may not get: throttling and server errors.
RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def retryable(exc: PutError) -> bool:
    """Whether a failed batch write may pass when sent again: throttled or a server error
    beyond botocore's retries, or no answer at all (the connection). A refusal of the
    request itself (a ValidationException: an item too large, a key too long) never will."""
    code = exc.cause_response_code
    return code is None or code in RETRYABLE


def write_batches(model: type[Model], items: Iterable[Model], attempts: int = 8) -> int:
    """Batch-write items 25 at a time; unprocessed items and retryable failures are sent
    again with backoff, any other failure raises at once."""
    connection = model._get_connection()
    written = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        pending = batch[:]
        for attempt in range(attempts):
            try:
                data = connection.batch_write_item(put_items=pending)
            except PutError as exc:
                if not retryable(exc):
                    raise
                data = None  # throttled beyond botocore's retries: back off, resend all
            else:
                unprocessed = (data or {}).get("UnprocessedItems", {}).get(model.Meta.table_name)
                if not unprocessed:
                    return
                pending = [entry["PutRequest"]["Item"] for entry in unprocessed]
            time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
        raise PutError(f"{len(pending)} items still unprocessed after {attempts} attempts")

    for item in items:
        batch.append(item.serialize())
        if len(batch) == BATCH:
            flush()
            written += len(batch)
            batch.clear()
    if batch:
        flush()
        written += len(batch)
    return written


#: The tenant state's stored form: 2 adds ``version``, the run in progress and when the
#: newest run started; items without a version (the previous releases') read the same.
STATE_VERSION = 2


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def state_to_json(state: TenantState) -> dict[str, Any]:
    """A tenant state as stored (days and times as ISO text)."""
    data = {
        name: value.isoformat() if isinstance(value, date) else value
        for name, value in asdict(state).items()
        if name not in ("tenant", "run")
    }
    data["version"] = STATE_VERSION
    data["heads"] = {  # [saved, base] pairs, as the previous release stored them
        day.isoformat(): [head.saved.isoformat(), head.base.isoformat() if head.base else ""]
        for day, head in state.heads.items()
    }
    run = state.run
    if run is not None:
        day, at, files = run.late_basis
        data["run"] = {
            "as_of": run.as_of.isoformat(),
            "started": run.started.isoformat(),
            "first_new": run.first_new.isoformat(),
            "base": run.base.isoformat() if run.base else None,
            "next_day": run.next_day.isoformat(),
            "state_key": run.state_key,
            "folded": run.folded,
            "late_basis": [day.isoformat() if day else None, at.isoformat() if at else None, files],
            "rows": run.rows,
            "days": run.days,
        }
    return data


def state_from_json(tenant: str, stored: dict[str, Any]) -> TenantState:
    """A tenant state back; fields of other releases are left out, missing ones default."""
    data = {f.name: stored[f.name] for f in fields(TenantState) if f.name in stored}
    for name in ("checkpoint_day", "newest_metered"):  # older releases kept other names
        data[name] = _day(data[name]) if data.get(name) else None
    data["checkpoint_at"] = _at(data.get("checkpoint_at"))
    data["last_run_at"] = _at(data.get("last_run_at"))
    data["heads"] = {
        _day(day): Head(datetime.fromisoformat(saved), _day(base) if base else None)
        for day, (saved, base) in data.get("heads", {}).items()
    }
    run = data.get("run")
    if run is not None:
        day, at, files = run["late_basis"]
        data["run"] = RunProgress(
            as_of=_day(run["as_of"]),
            started=datetime.fromisoformat(run["started"]),
            first_new=_day(run["first_new"]),
            base=_day(run["base"]) if run["base"] else None,
            next_day=_day(run["next_day"]),
            state_key=run["state_key"],
            folded=list(run["folded"]),
            late_basis=(_day(day) if day else None, _at(at), list(files)),
            rows=run["rows"],
            days=run["days"],
        )
    return TenantState(tenant, **data)


class DynamoStore:
    """``Store`` on DynamoDB."""

    def get_subscription(self, tenant: str) -> Subscription | None:
        try:
            item = SubscriptionItem.get(tenant)
        except SubscriptionItem.DoesNotExist:
            return None
        return parse_subscription(json.loads(item.document))

    def put_subscription(self, sub: Subscription) -> None:
        SubscriptionItem(
            sub.subscription_id,
            document=json.dumps(sub.to_json_dict()),
            updated_at=datetime.now(UTC),
        ).save()

    def subscription_ids(self) -> list[str]:
        return sorted(
            item.subscription_id
            for item in SubscriptionItem.scan(attributes_to_get=["subscription_id"])
        )

    def write_rows(self, ref: FileRef, version: str, rows: Iterable[Observation]) -> int:
        expires = datetime.combine(
            ref.day + timedelta(days=ROW_RETENTION_DAYS), datetime.min.time(), tzinfo=UTC
        )
        items = (
            ObservationItem(
                f"{ref.tenant}#{ref.day}#{shard_of(ref.key, first):02d}",
                f"{ref.key}#{version}#{first:09d}",
                row=packed,
                expires=expires,
            )
            for first, packed in pack_rows(rows)
        )
        return write_batches(ObservationItem, items)

    @staticmethod
    def _file_sk(ref: FileRef) -> str:
        return f"{ref.day}#{ref.source}#{ref.key.rsplit('/', 1)[-1]}"

    @staticmethod
    def _split_sk(ref: FileRef) -> str:
        """The object version being split, until every part is in: apart from the manifest
        that counts (outside the day ranges ``manifests`` reads)."""
        return f"split#{DynamoStore._file_sk(ref)}"

    def add_part(
        self,
        ref: FileRef,
        version: str,
        rows: int,
        accepted: int,
        rejected: int,
        entities: int,
        index: int,
    ) -> bool:
        """Add a part's counts once (atomically); True once every part is in: the version
        then replaces the manifest that counts (again on a redelivery: the same outcome)."""
        counts = (rows, accepted, rejected, entities)
        split = FileItem(ref.tenant, self._split_sk(ref))
        done = self._count_part(split, version, counts, index)
        if done:
            now = datetime.now(UTC)
            self.put_manifest(replace(self._manifest(split), status="ok", ingested_at=now))
        if done is None:  # a part of a split the previous release planned on the manifest
            done = self._count_part(
                FileItem(ref.tenant, self._file_sk(ref)), version, counts, index
            )
        return bool(done)

    @staticmethod
    def _count_part(
        item: FileItem, version: str, counts: tuple[int, int, int, int], index: int
    ) -> bool | None:
        """Add a part's counts to ``item`` unless counted already; None when ``item`` holds
        no split of ``version``, else whether every part is in (the item is then ``ok``:
        readable from now on, a run that started before sees it as new)."""
        rows, accepted, rejected, entities = counts
        current = (FileItem.version == version) & (FileItem.status == "partial")
        counted = _written(
            lambda: item.update(
                actions=[
                    FileItem.rows.add(rows),
                    FileItem.accepted.add(accepted),
                    FileItem.rejected.add(rejected),
                    FileItem.entities.add(entities),
                    FileItem.parts_done.add(1),
                    FileItem.parts_seen.add({str(index)}),
                ],
                condition=current & ~FileItem.parts_seen.contains(str(index)),
            )
        )
        if not counted:  # counted already (a redelivery), or no split of this version
            try:
                item.refresh(consistent_read=True)
            except FileItem.DoesNotExist:
                return None
            if item.version != version or item.status not in ("partial", "ok"):
                return None
        if item.parts_done < item.parts:
            return False
        if item.status == "partial":
            _written(
                lambda: item.update(
                    actions=[
                        FileItem.status.set("ok"),
                        FileItem.ingested_at.set(datetime.now(UTC)),
                    ],
                    condition=current,
                )
            )
        return True

    def fail_parts(self, ref: FileRef, version: str, reason: str) -> None:
        """A part is unreadable: so is the object version, which replaces the manifest that
        counts (as an unreadable whole object does)."""
        failed: list[Action] = [FileItem.status.set("unreadable"), FileItem.reason.set(reason)]
        split = FileItem(ref.tenant, self._split_sk(ref))
        if _written(lambda: split.update(actions=failed, condition=FileItem.version == version)):
            self.put_manifest(self._manifest(split))
            return
        legacy = FileItem(ref.tenant, self._file_sk(ref))  # planned by the previous release
        _written(lambda: legacy.update(actions=failed, condition=FileItem.version == version))

    def put_manifest(self, manifest: Manifest) -> None:
        """Make ``manifest`` the one that counts for its key, unless a newer version is
        held. A ``partial`` one (parts queued) is kept apart until its last part is in
        (``add_part``): the version held goes on counting meanwhile."""
        ref = manifest.ref
        sk = self._file_sk(ref)
        held = self._held(ref.tenant, sk)
        if held is not None and not manifest.supersedes(held):
            return  # an older version delivered late: the newer one stays
        if manifest.status == "partial":
            sk = self._split_sk(ref)
            held = self._held(ref.tenant, sk)
            if held is not None and (
                held.version == manifest.version or not manifest.supersedes(held)
            ):
                return  # the same version planned again (its parts' counts stay), or older
        FileItem(
            ref.tenant,
            sk,
            key=ref.key,
            version=manifest.version,
            sequencer=manifest.sequencer,
            checksum=manifest.checksum,
            rows=manifest.rows,
            accepted=manifest.accepted,
            rejected=manifest.rejected,
            status=manifest.status,
            reason=manifest.reason,
            warnings=json.dumps(manifest.warnings),
            rejects_key=manifest.rejects_key,
            ingested_at=manifest.ingested_at,
            parts=manifest.parts,
            entities=manifest.entities,
        ).save()

    def _held(self, tenant: str, sk: str) -> Manifest | None:
        try:
            return self._manifest(FileItem.get(tenant, sk, consistent_read=True))
        except FileItem.DoesNotExist:
            return None

    @staticmethod
    def _manifest(item: FileItem) -> Manifest:
        return Manifest(
            ref=parse_key(item.key),
            version=item.version,
            checksum=item.checksum,
            rows=int(item.rows),
            accepted=int(item.accepted),
            rejected=int(item.rejected),
            status=item.status,
            ingested_at=item.ingested_at,
            reason=item.reason,
            warnings=json.loads(item.warnings or "[]"),
            rejects_key=item.rejects_key,
            sequencer=item.sequencer,
            parts=int(item.parts or 1),
            entities=int(item.entities or 0),
        )

    def manifests(self, tenant: str, first: date, last: date) -> list[Manifest]:
        if last < first:
            return []
        items = FileItem.query(
            tenant, FileItem.file.between(f"{first}", f"{last}#~"), consistent_read=True
        )
        return [self._manifest(item) for item in items]

    def rows(self, tenant: str, day: date, versions: dict[str, str]) -> Iterator[Observation]:
        for shard in range(SHARDS):
            for item in ObservationItem.query(f"{tenant}#{day}#{shard:02d}"):
                file_key, version, _ = item.sk.rsplit("#", 2)
                if versions.get(file_key) == version:
                    ref = parse_key(file_key)
                    for line, text in unpack_rows(item.row):
                        yield decode(text, ref.source, ref.day, ref.key, line)

    def put_daily(self, tenant: str, daily: dict[str, dict[date, DayValue]]) -> None:
        items = (
            DailyItem(
                f"{tenant}#{code}",
                day.isoformat(),
                value=str(value.value),
                components=json.dumps({k: str(v) for k, v in value.components.items()}),
            )
            for code, days in daily.items()
            for day, value in days.items()
        )
        write_batches(DailyItem, items)

    def daily(
        self, tenant: str, codes: Iterable[str], first: date, last: date
    ) -> dict[str, dict[date, DayValue]]:
        out: dict[str, dict[date, DayValue]] = {}
        for code in codes:
            values = out.setdefault(code, {})
            if last < first:
                continue
            for item in DailyItem.query(
                f"{tenant}#{code}", DailyItem.sk.between(f"{first}", f"{last}")
            ):
                values[_day(item.sk)] = DayValue(
                    Fraction(item.value),
                    {k: Fraction(v) for k, v in json.loads(item.components).items()},
                )
        return out

    def get_state(self, tenant: str) -> TenantState:
        try:
            item = StateItem.get(f"{tenant}#STATE", "state", consistent_read=True)
        except StateItem.DoesNotExist:
            return TenantState(tenant)
        return state_from_json(tenant, json.loads(item.state))

    def put_state(self, state: TenantState) -> None:
        StateItem(f"{state.tenant}#STATE", "state", state=json.dumps(state_to_json(state))).save()

    def published(self, tenant: str, first: date, last: date) -> dict[date, Published]:
        return {
            _day(item.sk): Published(
                _day(item.sk),
                int(item.revision),
                item.digest,
                json.loads(item.events),
                _pending(item.pending),
                item.version,
            )
            for item in SummaryItem.query(
                f"{tenant}#SUMMARY",
                SummaryItem.sk.between(f"{first}", f"{last}"),
                consistent_read=True,
            )
        }

    def put_published(
        self, tenant: str, record: Published, expected: Published | None
    ) -> Published:
        item = SummaryItem(
            f"{tenant}#SUMMARY",
            record.as_of.isoformat(),
            revision=record.revision,
            digest=record.digest,
            events=json.dumps(record.events),
            pending=_pending_text(record.pending) if record.pending else None,
        )
        # The version attribute adds: the stored version is the expected one's (none: it
        # has no version, as a record written before versions).
        condition: Condition | None = None
        if expected is None:
            condition = SummaryItem.pk.does_not_exist()
        elif expected.version is None:
            condition = SummaryItem.pk.exists()
        else:
            item.version = expected.version
        if not _written(lambda: item.save(condition=condition)):
            raise Conflict(f"{tenant} {record.as_of}: the summary record changed")
        return replace(record, version=item.version)

    def lease(self, tenant: str, owner: str, until: datetime, now: datetime) -> bool:
        item = LeaseItem(f"{tenant}#LEASE", "lease", owner=owner, lease_until=until.timestamp())
        free = (  # or already this owner's: a write retried after its answer was lost
            LeaseItem.pk.does_not_exist()
            | (LeaseItem.lease_until < now.timestamp())
            | (LeaseItem.owner == owner)
        )
        return _written(lambda: item.save(condition=free))

    def release(self, tenant: str, owner: str) -> None:
        """End the lease now if ``owner`` still holds it (an update: the meter's policy
        grants PutItem and UpdateItem on the usage table, not DeleteItem); a lease that
        expired and was taken by another run meanwhile stays."""
        _written(
            lambda: LeaseItem(f"{tenant}#LEASE", "lease").update(
                actions=[LeaseItem.lease_until.set(0)], condition=LeaseItem.owner == owner
            )
        )

    def put_receipt(self, tenant: str, as_of: date, event: str, revision: int) -> None:
        ReceiptItem(f"{tenant}#{RECEIPTS}", f"{as_of}#{event}#{revision}").save()

    def receipts(self, tenant: str, as_of: date) -> set[tuple[str, int]]:
        found = set()
        query = ReceiptItem.query(
            f"{tenant}#{RECEIPTS}", ReceiptItem.sk.startswith(f"{as_of}#"), consistent_read=True
        )
        for item in query:
            _, event, revision = item.sk.split("#")
            found.add((event, int(revision)))
        return found

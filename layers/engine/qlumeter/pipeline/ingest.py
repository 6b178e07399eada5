"""Ingest one inventory object: stream, validate, store rows, manifest, rejects, quarantine.

An object larger than ``split_bytes`` (plain CSV or JSON Lines) is split into byte
ranges queued as parts; its manifest counts as readable once every part is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from tempfile import SpooledTemporaryFile
from typing import IO, Any
from urllib.parse import unquote_plus

from ..observation import Observation, ip_key
from ..paths import FileRef, PathError, parse_key
from ..publishing import INGEST_FAILED
from ..reader import FileReport, UnreadableFile, iter_file
from ..summary import failure_message
from .ports import Manifest, MeterTrigger, Objects, PartQueue, Publisher, Store
from .ranges import Part, line_offset, part_stream, plan_ranges, splittable

INVENTORY_PREFIX = "inventory/"
QUARANTINE_PREFIX = "quarantine/"
REJECTS_PREFIX = "rejects/"
REJECTS_IN_MEMORY = 1 << 20  # rejected rows beyond this spill to a temporary file
SPLIT_BYTES = 512 << 20  # larger objects are split (one invocation reads ~1M rows well below)
PART_BYTES = 128 << 20


@dataclass(frozen=True)
class ObjectVersion:
    """One delivered object: the identity an at-least-once delivery repeats."""

    bucket: str
    key: str  # as in the bucket (notifications URL-encode it; decoded here)
    version: str | None
    sequencer: str | None
    etag: str | None = None
    size: int | None = None

    @classmethod
    def from_notification(
        cls,
        bucket: str,
        key: str,
        version: str | None,
        sequencer: str | None,
        etag: str | None = None,
        size: int | None = None,
    ) -> ObjectVersion:
        return cls(
            bucket, unquote_plus(key, errors="surrogateescape"), version, sequencer, etag, size
        )

    @property
    def version_tag(self) -> str:
        """Names the object's contribution; a new version replaces the old one's."""
        return self.version or self.sequencer or self.etag or "unversioned"


@dataclass
class IngestResult:
    key: str
    status: str  # ok | unreadable | refused | split | part
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    reason: str | None = None
    tenant: str | None = None
    late: bool = False
    entities: int = 0  # distinct entity keys of the accepted rows (before correlation)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _failed_message(
    obj: ObjectVersion, tenant: str | None, reason: str, day: date | None
) -> dict[str, Any]:
    """The v1 message about a refused or unreadable object: ``as_of`` is the file's day, or
    today's when its path has none."""
    now = datetime.now(UTC)
    return failure_message(
        tenant or "unknown",
        day or now.date(),
        now,
        key=obj.key,
        version=obj.version,
        reason=reason,
        quarantined_as=QUARANTINE_PREFIX + obj.key,
    )


class Ingest:
    """The ingest service, with its storage and messaging injected."""

    def __init__(
        self,
        store: Store,
        objects: Objects,
        publisher: Publisher,
        trigger: MeterTrigger,
        parts: PartQueue | None = None,
        split_bytes: int = SPLIT_BYTES,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.store, self.objects, self.publisher, self.trigger = store, objects, publisher, trigger
        self.parts, self.split_bytes, self.part_bytes = parts, split_bytes, part_bytes

    def refuse(self, obj: ObjectVersion, ref: FileRef | None, reason: str) -> IngestResult:
        """Quarantine the object whole and tell the consumers."""
        tenant = ref.tenant if ref else None
        if _utf8(obj.key):  # a key that is not UTF-8 cannot be copied: it stays where it is
            self.objects.copy(obj.bucket, obj.key, obj.version, QUARANTINE_PREFIX + obj.key)
        message = _failed_message(obj, tenant, reason, ref.day if ref else None)
        self.publisher.publish(message, INGEST_FAILED, tenant or "unknown")
        return IngestResult(obj.key, "refused", reason=reason, tenant=tenant)

    def ingest(self, obj: ObjectVersion) -> IngestResult:
        """Ingest an object version whole, or plan its parts when it is large."""
        if not obj.key.startswith(INVENTORY_PREFIX):
            return self.refuse(obj, None, f"not under {INVENTORY_PREFIX}")
        try:
            ref = parse_key(obj.key[len(INVENTORY_PREFIX) :])
        except PathError as exc:
            return self.refuse(obj, None, exc.reason)
        if self.parts and (obj.size or 0) > self.split_bytes and splittable(ref):
            return self._split(obj, ref)
        with self.objects.open(obj.bucket, obj.key, obj.version) as body:
            report, rejects_key, entities = self._store_rows(obj, ref, body, 0, "")
        manifest = Manifest(
            ref=ref,
            version=obj.version_tag,
            checksum=report.checksum,
            rows=report.rows,
            accepted=report.accepted,
            rejected=report.rejected,
            status=report.status,
            ingested_at=datetime.now(UTC),
            reason=report.reason,
            warnings=report.warnings,
            rejects_key=rejects_key,
            sequencer=obj.sequencer,
            entities=entities,
        )
        self.store.put_manifest(manifest)
        result = IngestResult(
            ref.key,
            report.status,
            report.rows,
            report.accepted,
            report.rejected,
            report.reason,
            ref.tenant,
        )
        result.entities = entities
        if report.status != "ok":
            self.refuse(obj, ref, report.reason or "unreadable")
            return result
        result.late = self._late(ref)
        return result

    def ingest_part(self, part: Part) -> IngestResult:
        """Store one byte range's rows and add its counts to the file's manifest."""
        obj = ObjectVersion(part.bucket, part.key, part.version, part.sequencer, part.etag)
        ref = parse_key(obj.key[len(INVENTORY_PREFIX) :])
        with self.objects.open_range(
            obj.bucket, obj.key, obj.version, part.start, part.end
        ) as body:
            report, _, entities = self._store_rows(
                obj, ref, part_stream(part, body), line_offset(part), f".part-{part.index}"
            )
        if report.status != "ok":
            self.store.fail_parts(ref, obj.version_tag, report.reason or "unreadable")
            return self.refuse(obj, ref, report.reason or "unreadable")
        done = self.store.add_part(
            ref,
            obj.version_tag,
            report.rows,
            report.accepted,
            report.rejected,
            entities,
            part.index,
        )
        result = IngestResult(
            ref.key, "part", report.rows, report.accepted, report.rejected, None, ref.tenant
        )
        if done:
            result.late = self._late(ref)
        return result

    def _split(self, obj: ObjectVersion, ref: FileRef) -> IngestResult:
        assert self.parts is not None
        with self.objects.open(obj.bucket, obj.key, obj.version) as body:
            plan = plan_ranges(body, ref.fmt, self.part_bytes)
        self.store.put_manifest(
            Manifest(
                ref=ref,
                version=obj.version_tag,
                checksum=plan.checksum,
                rows=0,
                accepted=0,
                rejected=0,
                status="partial",
                ingested_at=datetime.now(UTC),
                rejects_key=f"{REJECTS_PREFIX}{obj.key}.{obj.version_tag}.part-*.jsonl",
                sequencer=obj.sequencer,
                parts=len(plan.ranges),
            )
        )
        self.parts.send(
            [
                Part(
                    obj.bucket,
                    obj.key,
                    obj.version,
                    obj.sequencer,
                    obj.etag,
                    i,
                    len(plan.ranges),
                    start,
                    end,
                    first_line,
                    plan.header,
                )
                for i, (start, end, first_line) in enumerate(plan.ranges)
            ]
        )
        return IngestResult(ref.key, "split", tenant=ref.tenant)

    def _store_rows(
        self, obj: ObjectVersion, ref: FileRef, body: IO[bytes], offset: int, suffix: str
    ) -> tuple[FileReport, str | None, int]:
        """Read, store the accepted rows, write the rejects; line numbers of the file.
        Returns the report, the rejects object's key and the entities the rows touched
        (distinct keys before correlation)."""
        report = FileReport(path=ref.key)
        entities: set[str] = set()
        sub = self.store.get_subscription(ref.tenant)
        if sub is None:
            report.warnings.append(f"no subscription for tenant {ref.tenant}: kept, not metered")
        strict = sub is not None and sub.strict  # a file with a warning is refused
        with SpooledTemporaryFile(max_size=REJECTS_IN_MEMORY) as rejects:
            try:
                rows = _rows(ref, body, report, rejects, offset, entities, strict)
                self.store.write_rows(ref, obj.version_tag, rows)
            except UnreadableFile as exc:
                report.status, report.reason = "unreadable", exc.reason
            if not rejects.tell():
                return report, None, len(entities)
            key = f"{REJECTS_PREFIX}{obj.key}.{obj.version_tag}{suffix}.jsonl"
            rejects.seek(0)
            self.objects.put(obj.bucket, key, rejects)  # streamed: memory stays bounded
        return report, key, len(entities)

    def _late(self, ref: FileRef) -> bool:
        """Ask for a metering run when the file's day was already metered."""
        state = self.store.get_state(ref.tenant)
        if state.newest_metered is None or ref.day > state.newest_metered:
            return False
        self.trigger.request(ref.tenant, state.newest_metered)
        return True


def _rows(
    ref: FileRef,
    body: IO[bytes],
    report: FileReport,
    rejects: IO[bytes],
    offset: int,
    entities: set[str],
    strict: bool,
) -> Iterator[Observation]:
    """The accepted rows; each rejected row is written to ``rejects`` as a JSON line.
    ``strict``: a file with a warning is unreadable."""
    for item in iter_file(ref, body, report, strict=strict):  # type: ignore[arg-type]
        item.line += offset
        if isinstance(item, Observation):
            entities.add(item.key or ip_key(item.network_id, min(item.ips)))
            yield item
        else:
            rejects.write(json.dumps(asdict(item)).encode() + b"\n")

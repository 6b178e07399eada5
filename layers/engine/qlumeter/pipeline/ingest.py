"""Ingest one inventory object: stream, validate, store rows, manifest, rejects, quarantine.

An object larger than ``split_bytes`` (plain CSV or JSON Lines) is split into byte ranges
queued as parts; its manifest counts as readable once every part is stored. What one
invocation takes on is bounded (``IngestLimits``): an object past a limit is quarantined
with the reason, never left to time out or run out of memory.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from tempfile import SpooledTemporaryFile
from typing import IO, Any
from urllib.parse import unquote_plus

from ..codec import MAX_ENCODED_BYTES, oversized
from ..observation import Observation, ip_key
from ..paths import FileRef, PathError, bucket_key_tenant, parse_bucket_key
from ..publishing import INGEST_FAILED
from ..reader import ROW, FileReport, Reject, UnreadableFile, iter_file
from ..summary import failure_message
from .ports import Manifest, MeterQueue, Objects, PartQueue, Publisher, Store
from .ranges import QUOTE_WINDOW, Part, line_offset, part_stream, plan_ranges, splittable
from .requests import MeterRequest

INVENTORY_PREFIX = "inventory/"
QUARANTINE_PREFIX = "quarantine/"
MARKER_SUFFIX = ".marker.json"  # a quarantine marker: the object stays where it is
REJECTS_PREFIX = "rejects/"
REJECTS_IN_MEMORY = 1 << 20  # rejected rows beyond this spill to a temporary file
SPLIT_BYTES = 512 << 20  # larger objects are split (one invocation reads ~1M rows well below)
PART_BYTES = 128 << 20
MAX_KEY_BYTES = 1024  # S3's longest key


@dataclass(frozen=True)
class IngestLimits:
    """What one ingest invocation takes on (docs/reliability.md, "AWS limits"). Past
    ``max_rows`` or ``max_object_bytes`` an object is quarantined with the reason; so is
    one still being read ``reserve_seconds`` before the invocation's end."""

    #: Rows of one object or part: what one invocation reads and stores within 15 minutes
    #: with a margin (bench/ingest_limits.py); it also bounds the entities counted.
    max_rows: int = 2_000_000
    #: Bytes of one object: what one invocation streams (hashing; a plan of its parts)
    #: within 15 minutes with a margin (bench/ingest_limits.py).
    max_object_bytes: int = 32 << 30
    #: CopyObject's limit: a larger object is quarantined by a marker, not a copy.
    copy_max_bytes: int = 5 << 30
    #: Rejected rows listed in full in the rejects object (and at most that in /tmp); the
    #: rest are counted by reason in its last line.
    rejects_kept_bytes: int = 32 << 20
    #: Seconds kept at the end of an invocation to quarantine what could not be read.
    reserve_seconds: float = 120
    #: Bytes over which a quote left open is taken for a stray one when a CSV object is cut
    #: into parts (``ranges.QUOTE_WINDOW``): a part outgrows ``part_bytes`` by that much.
    quote_window_bytes: int = QUOTE_WINDOW


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


def _fits(key: str) -> bool:
    return len(key.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES


def quarantine_key(key: str, marker: bool) -> str:
    """Where an object is quarantined: ``quarantine/<key>`` (a copy), or a marker beside
    it; a key too long for that gets a marker named by its digest."""
    name = QUARANTINE_PREFIX + key + (MARKER_SUFFIX if marker else "")
    if _fits(name) and _utf8(name):
        return name
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{QUARANTINE_PREFIX}{digest}{MARKER_SUFFIX}"


class Rejects:
    """The rejected rows of a file or part as JSON lines: the first ``kept_bytes`` of them
    in full (past 1 MiB in a temporary file), the others counted by field and reason and
    summed up in a last line of the same shape."""

    REASONS = 50  # distinct (field, reason) counted; the others together

    def __init__(self, file: IO[bytes], kept_bytes: int) -> None:
        self.file, self.kept_bytes = file, kept_bytes
        self.omitted: Counter[tuple[str, str]] = Counter()
        self.first_omitted: Reject | None = None

    def add(self, reject: Reject) -> None:
        line = json.dumps(asdict(reject)).encode() + b"\n"
        if not self.omitted and self.file.tell() + len(line) <= self.kept_bytes:
            self.file.write(line)
            return
        self.first_omitted = self.first_omitted or reject
        key = (reject.field, reject.reason[:200])
        if key not in self.omitted and len(self.omitted) >= self.REASONS:
            key = ("(other)", "other reasons")
        self.omitted[key] += 1

    def body(self) -> IO[bytes] | None:
        """The rejects object's body (rewound), or None when no row was rejected."""
        first = self.first_omitted
        if first is not None:
            counts = "; ".join(f"{f}: {r} ({n:,})" for (f, r), n in self.omitted.most_common(20))
            total = sum(self.omitted.values())
            summary = Reject(
                first.path,
                first.line,
                ROW,
                f"{total:,} more rejected rows from this line on are not listed"
                f" (the list keeps {self.kept_bytes:,} bytes); by reason: {counts}",
            )
            self.file.write(json.dumps(asdict(summary)).encode() + b"\n")
        if not self.file.tell():
            return None
        self.file.seek(0)
        return self.file


def _failed_message(
    obj: ObjectVersion, tenant: str, reason: str, day: date | None, quarantined_as: str
) -> dict[str, Any]:
    """The v1 message about a refused or unreadable object: ``as_of`` is the file's day, or
    today's when its path has none."""
    now = datetime.now(UTC)
    return failure_message(
        tenant,
        day or now.date(),
        now,
        key=obj.key,
        version=obj.version,
        reason=reason,
        quarantined_as=quarantined_as,
    )


class Ingest:
    """The ingest service, with its storage and messaging injected."""

    limits = IngestLimits()
    clock: Callable[[], float] = time.monotonic
    #: ``clock()`` past which no more rows are read (the handler sets it from the
    #: invocation's remaining time, less ``reserve_seconds``); None: no deadline.
    deadline: float | None = None

    def __init__(
        self,
        store: Store,
        objects: Objects,
        publisher: Publisher,
        meter_queue: MeterQueue,
        parts: PartQueue | None = None,
        split_bytes: int = SPLIT_BYTES,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.store, self.objects, self.publisher = store, objects, publisher
        self.meter_queue = meter_queue
        self.parts, self.split_bytes, self.part_bytes = parts, split_bytes, part_bytes

    def refuse(
        self, obj: ObjectVersion, ref: FileRef | None, reason: str, readable: bool = True
    ) -> IngestResult:
        """Quarantine the object and tell the consumers: a copy under ``quarantine/``, or a
        marker there naming it when it cannot be copied (larger than CopyObject takes, not
        ``readable``, a key too long for the prefix or not UTF-8). The message goes to the
        tenant the key names, or to ``UNATTRIBUTED``."""
        tenant = ref.tenant if ref else bucket_key_tenant(obj.key, INVENTORY_PREFIX)
        copy = readable and _utf8(obj.key) and (obj.size or 0) <= self.limits.copy_max_bytes
        target = quarantine_key(obj.key, marker=not copy)
        if target.endswith(MARKER_SUFFIX):
            note = {"key": obj.key, "version": obj.version, "size": obj.size, "reason": reason}
            self.objects.put(obj.bucket, target, json.dumps(note).encode())
        else:
            self.objects.copy(obj.bucket, obj.key, obj.version, target)
        message = _failed_message(obj, tenant, reason, ref.day if ref else None, target)
        self.publisher.publish(message, INGEST_FAILED, tenant)
        return IngestResult(obj.key, "refused", reason=reason, tenant=tenant)

    def ingest(self, obj: ObjectVersion) -> IngestResult:
        """Ingest an object version whole, or plan its parts when it is large."""
        try:
            ref = parse_bucket_key(obj.key, INVENTORY_PREFIX)
        except PathError as exc:
            return self.refuse(obj, None, exc.reason)
        size = obj.size or 0
        if size > self.limits.max_object_bytes:
            return self._unreadable(obj, ref, self._too_large(size))
        if self.parts and size > self.split_bytes and splittable(ref):
            return self._split(obj, ref)
        try:
            body = self.objects.open(obj.bucket, obj.key, obj.version)
        except UnreadableFile as exc:  # refused by the store: not even a copy can be made
            return self._unreadable(obj, ref, exc.reason, readable=False)
        with body:
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
        obj = ObjectVersion(
            part.bucket, part.key, part.version, part.sequencer, part.etag, part.size
        )
        ref = parse_bucket_key(obj.key, INVENTORY_PREFIX)
        try:
            head = part.header.encode("utf-8", "surrogateescape")
            if part.header_bytes:
                with self.objects.open_range(
                    obj.bucket, obj.key, obj.version, 0, part.header_bytes
                ) as header:
                    head = header.read()
            body = self.objects.open_range(obj.bucket, obj.key, obj.version, part.start, part.end)
        except UnreadableFile as exc:  # refused by the store: not even a copy can be made
            self.store.fail_parts(ref, obj.version_tag, exc.reason)
            return self.refuse(obj, ref, exc.reason, readable=False)
        with body:
            report, _, entities = self._store_rows(
                obj, ref, part_stream(head, body), line_offset(part), f".part-{part.index}"
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

    def _too_large(self, size: int) -> str:
        return (
            f"object of {size:,} bytes: over {self.limits.max_object_bytes:,}, more than one"
            " invocation reads within the 15-minute limit; deliver it as several files"
        )

    def _unreadable(
        self, obj: ObjectVersion, ref: FileRef, reason: str, readable: bool = True
    ) -> IngestResult:
        """Manifest the object as unreadable (a newer version of its key replaces the
        older one's rows: neither counts), quarantine it and tell the consumers."""
        self.store.put_manifest(
            Manifest(
                ref=ref,
                version=obj.version_tag,
                checksum="",
                rows=0,
                accepted=0,
                rejected=0,
                status="unreadable",
                ingested_at=datetime.now(UTC),
                reason=reason,
                sequencer=obj.sequencer,
            )
        )
        self.refuse(obj, ref, reason, readable)
        return IngestResult(ref.key, "unreadable", reason=reason, tenant=ref.tenant)

    def _split(self, obj: ObjectVersion, ref: FileRef) -> IngestResult:
        assert self.parts is not None
        try:
            body = self.objects.open(obj.bucket, obj.key, obj.version)
        except UnreadableFile as exc:
            return self._unreadable(obj, ref, exc.reason, readable=False)
        try:
            with body:
                plan = plan_ranges(
                    body,
                    ref.fmt,
                    self.part_bytes,
                    self.limits.max_rows,
                    quote_window=self.limits.quote_window_bytes,
                )
        except UnreadableFile as exc:
            return self._unreadable(obj, ref, exc.reason)
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
                    header_bytes=plan.header_bytes,
                    size=obj.size,
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
        entities: set[int] = set()
        sub = self.store.get_subscription(ref.tenant)
        if sub is None:
            report.warnings.append(f"no subscription for tenant {ref.tenant}: kept, not metered")
        strict = sub is not None and sub.strict  # a file with a warning is refused
        with SpooledTemporaryFile(max_size=REJECTS_IN_MEMORY) as spool:
            rejects = Rejects(spool, self.limits.rejects_kept_bytes)
            try:
                rows = self._rows(ref, body, report, rejects, offset, entities, strict)
                self.store.write_rows(ref, obj.version_tag, rows)
            except UnreadableFile as exc:
                report.status, report.reason = "unreadable", exc.reason
            listed = rejects.body()
            if listed is None:
                return report, None, len(entities)
            key = f"{REJECTS_PREFIX}{obj.key}.{obj.version_tag}{suffix}.jsonl"
            self.objects.put(obj.bucket, key, listed)  # streamed: memory stays bounded
        return report, key, len(entities)

    def _rows(
        self,
        ref: FileRef,
        body: IO[bytes],
        report: FileReport,
        rejects: Rejects,
        offset: int,
        entities: set[int],
        strict: bool,
    ) -> Iterator[Observation]:
        """The accepted rows; each rejected row goes to ``rejects``. Entities are counted by
        their keys' hashes (a few bytes each, whatever a key's length). Past
        ``max_rows``, or the deadline, the file is unreadable; ``strict``: a file with a
        warning is unreadable."""
        limit, deadline = self.limits.max_rows, self.deadline
        items = iter_file(ref, body, report, strict=strict)  # type: ignore[arg-type]
        for read, item in enumerate(items, 1):
            item.line += offset
            if isinstance(item, Observation) and (size := oversized(item)):
                report.accepted, report.rejected = report.accepted - 1, report.rejected + 1
                reason = f"{size:,} bytes stored: over the {MAX_ENCODED_BYTES:,} a row may take"
                rejects.add(Reject(item.path, item.line, "row", reason))
            elif isinstance(item, Observation):
                entities.add(hash(item.key or ip_key(item.network_id, min(item.ips))))
                yield item
            else:
                rejects.add(item)
            if not read % 1024:
                if report.rows > limit:
                    raise UnreadableFile(
                        f"more than {limit:,} rows: more than one invocation reads within the"
                        f" 15-minute limit; deliver files of at most {limit:,} rows"
                    )
                if deadline is not None and self.clock() > deadline:
                    raise UnreadableFile(
                        f"not read within the function's time limit ({report.rows:,} rows"
                        " read); deliver it as several smaller files"
                    )

    def _late(self, ref: FileRef) -> bool:
        """Ask for a metering run when the file's day was already metered (late files of a
        tenant within a few minutes make one request: ``requests``)."""
        state = self.store.get_state(ref.tenant)
        if state.newest_metered is None or ref.day > state.newest_metered:
            return False
        request = MeterRequest(
            subscription_id=ref.tenant,
            as_of=state.newest_metered,
            reason="late_data",
            requested_at=datetime.now(UTC),
        )
        self.meter_queue.send([request])
        return True

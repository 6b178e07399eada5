"""Ingest one inventory object: stream, validate, store rows, manifest, rejects, quarantine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from ..observation import Observation
from ..paths import FileRef, PathError, parse_key
from ..reader import FileReport, Reject, UnreadableFile, iter_file
from .ports import Manifest, MeterTrigger, Objects, Publisher, Store

INVENTORY_PREFIX = "inventory/"
QUARANTINE_PREFIX = "quarantine/"
REJECTS_PREFIX = "rejects/"


@dataclass(frozen=True)
class ObjectVersion:
    """One delivered object: the identity an at-least-once delivery repeats."""

    bucket: str
    key: str  # as in the bucket (notifications URL-encode it; decoded here)
    version: str | None
    sequencer: str | None
    etag: str | None = None

    @classmethod
    def from_notification(
        cls,
        bucket: str,
        key: str,
        version: str | None,
        sequencer: str | None,
        etag: str | None = None,
    ) -> ObjectVersion:
        return cls(bucket, unquote_plus(key), version, sequencer, etag)

    @property
    def version_tag(self) -> str:
        """Names the object's contribution; a new version replaces the old one's."""
        return self.version or self.sequencer or self.etag or "unversioned"


@dataclass
class IngestResult:
    key: str
    status: str  # ok | unreadable | refused
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    reason: str | None = None
    tenant: str | None = None
    late: bool = False


def _failed_message(obj: ObjectVersion, tenant: str | None, reason: str) -> dict[str, object]:
    return {
        "schema_version": "1",
        "event_type": "ingest_failed",
        "subscription_id": tenant or "unknown",
        "key": obj.key,
        "version": obj.version,
        "reason": reason,
        "quarantined_as": QUARANTINE_PREFIX + obj.key,
        "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }


class Ingest:
    """The ingest service, with its storage and messaging injected."""

    def __init__(
        self, store: Store, objects: Objects, publisher: Publisher, trigger: MeterTrigger
    ) -> None:
        self.store, self.objects, self.publisher, self.trigger = store, objects, publisher, trigger

    def refuse(self, obj: ObjectVersion, tenant: str | None, reason: str) -> IngestResult:
        """Quarantine the object whole and tell the consumers."""
        self.objects.copy(obj.bucket, obj.key, obj.version, QUARANTINE_PREFIX + obj.key)
        self.publisher.publish(
            _failed_message(obj, tenant, reason), "ingest_failed", tenant or "unknown"
        )
        return IngestResult(obj.key, "refused", reason=reason, tenant=tenant)

    def ingest(self, obj: ObjectVersion) -> IngestResult:
        if not obj.key.startswith(INVENTORY_PREFIX):
            return self.refuse(obj, None, f"not under {INVENTORY_PREFIX}")
        try:
            ref = parse_key(obj.key[len(INVENTORY_PREFIX) :])
        except PathError as exc:
            return self.refuse(obj, None, exc.reason)
        report = FileReport(path=ref.key)
        if self.store.get_subscription(ref.tenant) is None:
            report.warnings.append(
                f"no subscription for tenant {ref.tenant}: rows kept, not metered"
            )
        rejects: list[Reject] = []
        with self.objects.open(obj.bucket, obj.key, obj.version) as body:
            try:
                self.store.write_rows(ref, obj.version_tag, self._rows(ref, body, report, rejects))
            except UnreadableFile as exc:
                report.status, report.reason = "unreadable", exc.reason
        rejects_key = None
        if rejects:
            rejects_key = f"{REJECTS_PREFIX}{obj.key}.{obj.version_tag}.jsonl"
            body_text = "".join(json.dumps(asdict(r)) + "\n" for r in rejects)
            self.objects.put(obj.bucket, rejects_key, body_text.encode())
        manifest = Manifest(
            ref,
            obj.version_tag,
            report.checksum,
            report.rows,
            report.accepted,
            report.rejected,
            report.status,
            datetime.now(UTC),
            report.reason,
            report.warnings,
            rejects_key,
            obj.sequencer,
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
        if report.status != "ok":
            self.refuse(obj, ref.tenant, report.reason or "unreadable")
            return result
        state = self.store.get_state(ref.tenant)
        if state.newest_metered is not None and ref.day <= state.newest_metered:
            result.late = True
            self.trigger.request(ref.tenant, state.newest_metered)
        return result

    @staticmethod
    def _rows(
        ref: FileRef, body: object, report: FileReport, rejects: list[Reject]
    ) -> Iterator[Observation]:
        for item in iter_file(ref, body, report):  # type: ignore[arg-type]
            if isinstance(item, Observation):
                yield item
            else:
                rejects.append(item)

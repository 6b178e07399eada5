"""Fault injection on botocore, an at-least-once driver of the real handlers, and a
tenant-agnostic snapshot of everything the pipeline stores and publishes.

Faults are decided per API call (``BaseClient._make_api_call``, where the request's
parameters are known) and, for errors, injected at the HTTP level
(``Endpoint._do_get_response``) so botocore's own retry handler sees them exactly as it
would see a throttled or failing response: a fault for fewer attempts than the client's
retry budget is absorbed by botocore, a longer one reaches the code as a ``ClientError``.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import botocore.client
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ResponseStreamingError
from urllib3.exceptions import ProtocolError

import qlumeter.pipeline.dynamo as dynamo_module
from qlumeter.config import parse_subscription
from qlumeter.pipeline.dynamo import (
    DailyItem,
    FileItem,
    ObservationItem,
    ReceiptItem,
    StateItem,
    SummaryItem,
    unpack_rows,
)
from qlumeter_cli.local import meter_folder
from qlumeter_cli.stack import sqs_event
from tests.support import (
    INVENTORY_BUCKET,
    Pipeline,
    agents,
    day,
    pipeline_subscription,
    write_file,
)

#: Figures of the whole run (printed by the conftest): faults injected, inputs tried...
FIGURES: Counter[str] = Counter()
#: The fault plans of the running test (the conftest files their counts by its outcome).
ACTIVE: list[Faults] = []


class OverBudget(BaseException):
    """A test ran past its time budget."""


class Killed(BaseException):
    """The Lambda runtime ended the invocation (timeout, out of memory): nothing in the
    function runs after it, not even Powertools' clean-up of its in-progress record."""


@dataclass
class AfterTimeout:
    """The Lambda context of an invocation whose messages, when redelivered, come back
    after its timeout (the queue's visibility timeout exceeds the function's): a killed
    invocation's in-progress idempotency record has expired by then, as in AWS."""

    function_name: str
    memory_limit_in_mb: int = 2048
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:ingest"

    def get_remaining_time_in_millis(self) -> int:
        return 1


# --- fault injection -------------------------------------------------------------------


@dataclass
class Rule:
    """Inject a fault into matching calls: let ``skip`` through, then hit ``times``.

    kinds: ``throttle`` (``attempts`` consecutive HTTP error responses; botocore retries),
    ``unprocessed`` (BatchWriteItem stores only the first half, returns the rest as
    UnprocessedItems), ``kill`` (raise Killed before or after the call reached AWS),
    ``break_stream`` (GetObject's body raises after ``after_bytes`` bytes).
    """

    kind: str
    service: str
    operation: str
    table: str | None = None
    where: Callable[[dict[str, Any]], bool] | None = None
    skip: int = 0
    times: int = 1
    attempts: int = 1
    code: str = "ProvisionedThroughputExceededException"
    status: int = 400
    when: str = "before"
    after_bytes: int = 0
    seen: int = 0
    hit: int = 0

    def matches(self, service: str, operation: str, params: dict[str, Any]) -> bool:
        if (service, operation) != (self.service, self.operation):
            return False
        if self.table is not None and self.table not in _tables(params):
            return False
        return self.where is None or self.where(params)


def _tables(params: dict[str, Any]) -> set[str]:
    return {params["TableName"]} if "TableName" in params else set(params.get("RequestItems", {}))


class FirstTime:
    """A rule filter that matches each distinct call (by ``key``) once: every message
    published, every object read fails on its first attempt and passes on the next."""

    def __init__(self, key: Callable[[dict[str, Any]], Any]) -> None:
        self.key, self.seen = key, set()

    def __call__(self, params: dict[str, Any]) -> bool:
        key = self.key(params)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class _NoSleep:
    """``time`` without waiting: backoff delays are recorded, not slept."""

    def __init__(self) -> None:
        self.slept = 0.0

    def sleep(self, seconds: float) -> None:
        self.slept += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class _Raw:
    """The raw body of an injected HTTP response."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


class BrokenStream:
    """A GetObject body that fails like a dropped connection after ``after`` bytes."""

    def __init__(self, body: Any, after: int) -> None:
        self._body, self._left = body, after

    def error(self) -> Exception:
        return ResponseStreamingError(error=ProtocolError("Connection broken: reset by peer"))

    def read(self, amt: int | None = None) -> bytes:
        if self._left <= 0 or amt is None:  # a whole read fails with the connection
            raise self.error()
        size = self._left if amt is None else min(amt, self._left)
        data: bytes = self._body.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> BrokenStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Faults:
    """The fault plan of one test; every injected fault is counted in ``FIGURES``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        ACTIVE.append(self)
        self.rules: list[Rule] = []
        self.injected: Counter[str] = Counter()  # faulted calls by kind and operation
        self.http_errors = 0  # error responses botocore saw (a throttled call has several)
        self.calls: Counter[str] = Counter()
        self.clock = _NoSleep()
        self._pending = threading.local()
        monkeypatch.setattr(botocore.endpoint, "time", self.clock)
        monkeypatch.setattr(dynamo_module, "time", self.clock)
        real_call = botocore.client.BaseClient._make_api_call
        real_get = botocore.endpoint.Endpoint._do_get_response
        faults = self

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            return faults._call(real_call, client, service, operation, params)

        def do_get_response(endpoint: Any, request: Any, operation_model: Any, context: Any) -> Any:
            pending = getattr(faults._pending, "errors", None)
            if pending and pending[0] > 0:
                pending[0] -= 1
                faults.http_errors += 1
                return faults._error_response(request, pending[1], pending[2]), None
            return real_get(endpoint, request, operation_model, context)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
        monkeypatch.setattr(botocore.endpoint.Endpoint, "_do_get_response", do_get_response)

    def add(self, kind: str, service: str, operation: str, **options: Any) -> Rule:
        rule = Rule(kind, service, operation, **options)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    def _due(self, service: str, operation: str, params: dict[str, Any]) -> Rule | None:
        for rule in self.rules:
            if rule.matches(service, operation, params):
                rule.seen += 1
                if rule.seen > rule.skip and rule.hit < rule.times:
                    rule.hit += 1
                    return rule
        return None

    def _count(self, rule: Rule, n: int = 1) -> None:
        self.injected[f"{rule.kind} {rule.service}.{rule.operation}"] += n

    def _call(
        self, real: Any, client: Any, service: str, operation: str, params: dict[str, Any]
    ) -> Any:
        self.calls[f"{service}.{operation}"] += 1
        rule = self._due(service, operation, params)
        if rule is None:
            return real(client, operation, params)
        self._count(rule)
        if rule.kind == "throttle":
            self._pending.errors = [rule.attempts, rule.code, rule.status]
            try:
                return real(client, operation, params)
            finally:
                self._pending.errors = None
        if rule.kind == "kill":
            if rule.when == "after":
                real(client, operation, params)
            raise Killed(f"killed at {service}.{operation} ({rule.when} the call)")
        if rule.kind == "unprocessed":
            return self._unprocessed(real, client, operation, params)
        if rule.kind == "break_stream":
            response = real(client, operation, params)
            response["Body"] = BrokenStream(response["Body"], rule.after_bytes)
            return response
        raise ValueError(f"unknown fault kind {rule.kind}")

    @staticmethod
    def _unprocessed(real: Any, client: Any, operation: str, params: dict[str, Any]) -> Any:
        done: dict[str, list[Any]] = {}
        back: dict[str, list[Any]] = {}
        for table, requests in params["RequestItems"].items():
            half = max(1, len(requests) // 2)
            done[table], back[table] = requests[:half], requests[half:]
        response = real(client, operation, {**params, "RequestItems": done})
        response["UnprocessedItems"] = {t: r for t, r in back.items() if r}
        return response

    @staticmethod
    def _error_response(request: Any, code: str, status: int) -> tuple[AWSResponse, dict[str, Any]]:
        http = AWSResponse(request.url, status, {"x-amzn-requestid": "injected"}, _Raw(b"{}"))
        parsed = {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
        }
        return http, parsed


def bucket_of(p: Pipeline) -> str:
    """The inventory bucket's name."""
    return str(getattr(p, "inventory_bucket", INVENTORY_BUCKET))


# --- inputs made as they are read ---------------------------------------------------


class Generated(io.RawIOBase):
    """A file of ``head`` + ``size`` filler bytes + ``tail``, produced as it is read (never
    built whole), optionally gzip-compressed on the fly."""

    def __init__(
        self, head: bytes, size: int, tail: bytes, gz: bool = False, filler: bytes = b"a"
    ) -> None:
        self._parts = [head, b"", tail]
        self._left = size
        self._block = filler * ((1 << 16) // len(filler))
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31) if gz else None
        self._out = b""
        self._done = False
        self.produced = 0

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        if self._parts[0]:
            chunk, self._parts[0] = self._parts[0], b""
        elif self._left:
            chunk = self._block[: min(self._left, len(self._block))]
            self._left -= len(chunk)
        elif self._parts[2]:
            chunk, self._parts[2] = self._parts[2], b""
        else:
            return b""
        self.produced += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        while len(self._out) < len(buffer) and not self._done:
            raw = self._next()
            if self._gzip is None:
                self._out += raw
            elif raw:
                self._out += self._gzip.compress(raw)
            else:
                self._out += self._gzip.flush()
            self._done = not raw
        chunk, self._out = self._out[: len(buffer)], self._out[len(buffer) :]
        memoryview(buffer).cast("B")[: len(chunk)] = chunk
        return len(chunk)


# --- the at-least-once driver -----------------------------------------------------------


@dataclass
class Driver:
    """Plays SQS and the Lambda poller: one message per invocation (the template's batch
    size), a failed record (partial batch response) or a killed invocation's message comes
    back, at most ``max_receives`` times (then
    they would go to the DLQ: the test fails). Meter runs that raise are retried, as
    the scheduler's retry policy does."""

    p: Pipeline
    max_receives: int = 5
    meter_tries: int = 4
    received: Counter[str] = field(default_factory=Counter)
    dead: list[str] = field(default_factory=list)  # bodies of dead-lettered messages
    redeliveries: int = 0
    kills: int = 0
    meter_failures: int = 0
    late_requests: list[tuple[str, str]] = field(default_factory=list)
    retry_after: Callable[[int], None] = lambda attempt: None  # the wait before a retry
    context: Callable[[], Any] = lambda: AfterTimeout("ingest")  # each ingest invocation's

    def put(self, root: Path, path: Path) -> str:
        key = path.relative_to(root).as_posix()
        self.p.s3.put_object(Bucket=bucket_of(self.p), Key=key, Body=path.read_bytes())
        return key

    def drain(self, messages: list[dict[str, Any]] | None = None) -> None:
        """Deliver ``messages`` (default: what is queued), then whatever gets queued
        (parts of large objects), until nothing is left. A failed message comes back
        after everything already queued, as after a visibility timeout."""
        pending = list(messages) if messages is not None else []
        while True:
            pending += self.p.receive(self.p.queue_url)
            if not pending:
                return
            message = pending.pop(0)
            self.received[message["MessageId"]] += 1
            if self.received[message["MessageId"]] > self.max_receives:
                self.dead.append(message["Body"])
                continue
            try:
                response = self.p.ingest.handler(
                    sqs_event([message], self.p.queue_arn), self.context()
                )
                failed = bool(response["batchItemFailures"])
            except Killed:
                self.kills += 1
                failed = True
            except Exception:  # every record of the batch failed: the invocation errs
                failed = True
            if failed:
                self.redeliveries += 1
                pending += self.p.receive(self.p.queue_url)
                pending.append(message)

    def honour_late(self) -> None:
        """Run the late-data requests the ingest queued on the meter queue."""
        self.late_requests += self.p.late.requests
        self.p.late.requests.clear()
        self.work()

    def meter(self, tenant: str, as_of: str) -> dict[str, Any]:
        """A run of ``tenant`` as of ``as_of`` asked for, and the meter queue worked."""
        self.p.dispatch(subscription_id=tenant, as_of=as_of)
        return self.work()

    def work(self) -> dict[str, Any]:
        """Work the meter queue; a failed run is retried (its request stays queued, as SQS
        hands it out again after its visibility timeout)."""
        for attempt in range(self.meter_tries):
            try:
                return {"results": self.p.work()}
            except (Exception, Killed):
                self.meter_failures += 1
                if attempt == self.meter_tries - 1:
                    raise
                self.retry_after(attempt)
        raise AssertionError("unreachable")

    @property
    def failures(self) -> int:
        return self.redeliveries + self.meter_failures


# --- the scenario every fault test plays ------------------------------------------------


def subscription(tenant: str) -> dict[str, Any]:
    return pipeline_subscription(
        tenant, entitlement_qlus="900", alert_thresholds=["0.5", "0.8", "1.0"], late_data_days=3
    )


def vms(count: int) -> list[dict[str, Any]]:
    return [
        {"asset_type": "virtual_machine", "cloud_provider": "aws", "cloud_resource_id": f"i-{i}"}
        for i in range(count)
    ]


def scanner(n: int) -> list[dict[str, Any]]:
    return [
        {"asset_type": "host", "fqdn": "h0.corp.example", "modules": "vmdr"},
        {"asset_type": "host", "ip": f"10.0.0.{n + 1}", "modules": "vmdr", "vuln_count": 0},
        {"asset_type": "host", "ip": "10.0.0.999", "modules": "vmdr"},  # a rejected row
    ]


SPLIT_BYTES, PART_BYTES = 6_000, 2_500  # the service's split sizes in these tests
BIG_ROWS = 160  # a file of two 25-item batches (~5 rows an item)


def write_inventory(root: Path, tenant: str) -> dict[str, list[Path]]:
    """The scenario's files by phase: ``early`` (days 0-3) and ``late`` (day 2, delivered
    after day 3 was metered). Every format, gzip, a multi-batch file, a file large enough
    to be split into parts, rejected rows."""

    def put(source: str, n: int, rows: list[dict[str, Any]], **kw: Any) -> Path:
        return write_file(root, source, day(n), rows, tenant=tenant, **kw)

    early = [
        put("cloud_agent", 0, agents(BIG_ROWS), name="agents"),  # gzipped below: not split
        put("scanner", 0, scanner(0), fmt="jsonl"),
        put("cspm", 0, vms(3), fmt="json"),
        put("cloud_agent", 1, agents(60), name="agents", fmt="jsonl"),  # split in 3
        put("cspm", 1, vms(4), fmt="json"),
        put("cloud_agent", 2, agents(30), name="agents"),
        put("cloud_agent", 3, agents(35), name="agents"),
        put("cspm", 3, vms(2), fmt="json"),
    ]
    import gzip

    big = early[0]
    gz = big.with_name(big.name + ".gz")
    gz.write_bytes(gzip.compress(big.read_bytes(), mtime=0))
    big.unlink()
    early[0] = gz
    poison = root / "inventory" / f"tenant={tenant}" / "source=scanner" / "date=2026-01-02"
    poison.mkdir(parents=True, exist_ok=True)
    poison = poison / "broken.csv.gz"
    poison.write_bytes(b"\x1f\x8b\x08\x00 this is not gzip")  # quarantined, ingest_failed
    early.append(poison)
    late = [put("scanner", 2, scanner(2) + agents(5, first=900), name="late")]
    return {"early": early, "late": late}


RUN_DAYS = (1, 3, 15)  # scheduled runs; the late file lands between days 3 and 15


def play(
    driver: Driver, root: Path, tenant: str, between: Callable[[str], None] | None = None
) -> None:
    """The scenario: drop day 0-3 files, run days 1 and 3, a late file for day 2, a run on
    day 15 (closes the first interval). ``between(step)`` runs before each step."""
    p = driver.p
    p.ingest.service.split_bytes, p.ingest.service.part_bytes = SPLIT_BYTES, PART_BYTES
    assert p.put_subscription(subscription(tenant))["ok"]
    files = write_inventory(root, tenant)
    step = between or (lambda name: None)
    step("drop")
    for path in files["early"]:
        driver.put(root, path)
    driver.drain()
    for n in RUN_DAYS[:2]:
        step(f"meter {n}")
        driver.meter(tenant, day(n).isoformat())
    step("late")
    for path in files["late"]:
        driver.put(root, path)
    driver.drain()
    driver.honour_late()
    for n in RUN_DAYS[2:]:
        step(f"meter {n}")
        driver.meter(tenant, day(n).isoformat())


# --- what the pipeline holds, independent of the tenant's name and of versions ----------


def _untenant(text: str, tenant: str) -> str:
    for named, anonymous in (
        (f"tenant={tenant}/", "tenant=T/"),
        (f'"{tenant}"', '"T"'),
        (f"checkpoints/{tenant}/", "checkpoints/T/"),
    ):
        text = text.replace(named, anonymous)
    return text


def snapshot(p: Pipeline, tenant: str) -> dict[str, Any]:
    """Manifests, current rows, rejects, daily values, summary records, tenant state."""
    manifests, rejects = [], []
    current: set[tuple[str, str]] = set()
    for item in FileItem.query(tenant):
        manifests.append(
            (
                item.file,
                int(item.rows),
                int(item.accepted),
                int(item.rejected),
                item.status,
                item.reason,
                _untenant(item.warnings or "[]", tenant),
                int(item.parts or 1),
            )
        )
        if item.status == "ok":
            current.add((item.key, item.version))
        if item.rejects_key:
            keys = [item.rejects_key]
            if "*" in item.rejects_key:  # the parts' rejects files
                prefix = item.rejects_key.split("*", 1)[0]
                listed = p.s3.list_objects_v2(Bucket=bucket_of(p), Prefix=prefix)
                keys = [o["Key"] for o in listed.get("Contents", [])]
            for key in keys:
                body = p.s3.get_object(Bucket=bucket_of(p), Key=key)["Body"].read()
                rejects += [_untenant(line, tenant) for line in body.decode().splitlines()]
    rows, stored_items = [], 0
    for item in ObservationItem.scan(ObservationItem.pk.startswith(f"{tenant}#")):
        file_key, version, _ = item.sk.rsplit("#", 2)
        if (file_key, version) in current:
            stored_items += 1
            rows += [
                (_untenant(file_key, tenant), line, text) for line, text in unpack_rows(item.row)
            ]
    daily = sorted(
        (code, item.sk, item.value, item.components)
        for code in subscription(tenant)["products"]
        for item in DailyItem.query(f"{tenant}#{code}")
    )
    records = list(SummaryItem.query(f"{tenant}#SUMMARY"))
    summaries = sorted((i.sk, int(i.revision), i.digest, i.events) for i in records)
    pending = sorted(item.sk for item in records if item.pending)
    receipts = sorted(item.sk for item in ReceiptItem.query(f"{tenant}#SENT"))
    state = json.loads(StateItem.get(f"{tenant}#STATE", "state").state)
    for name in [n for n in state if n.endswith("_at")]:
        state.pop(name)  # times of the runs
    state["heads"] = sorted(state.get("heads", {}))  # the days, not when they were saved
    for name in [n for n in state if n.endswith("_key")]:
        state[name] = _untenant(state[name] or "", tenant)
    return {
        "manifests": sorted(manifests),
        "rows": sorted(rows),
        "stored_items": stored_items,
        "rejects": sorted(rejects),
        "daily": daily,
        "summaries": summaries,
        "pending": pending,  # messages not known to have gone out: none after a run
        "receipts": receipts,  # what the ledger received
        "state": state,
    }


@dataclass
class Outcome:
    """What a tenant ended with: the stored state and the messages published."""

    snapshot: dict[str, Any]
    messages: list[dict[str, Any]]


_REFERENCE: list[Outcome] = []


def clean_reference(p: Pipeline, root: Path) -> Outcome:
    """The scenario played without faults by tenant ``clean`` (computed once per process:
    it is data only, the same in every moto account)."""
    if not _REFERENCE:
        driver = Driver(p)
        play(driver, root, "clean")
        assert driver.failures == 0 and not driver.dead
        _REFERENCE.append(Outcome(snapshot(p, "clean"), published_for(p, "clean")))
    return _REFERENCE[0]


def outcome(p: Pipeline, tenant: str, faults: Faults | None = None) -> Outcome:
    """The tenant's outcome, read with the faults switched off."""
    if faults is not None:
        faults.clear()
    return Outcome(snapshot(p, tenant), published_for(p, tenant))


def published_for(p: Pipeline, tenant: str) -> list[dict[str, Any]]:
    """The tenant's messages on the consumer queue, without their time."""
    out = []
    for m in p.published():
        if m["_attributes"].get("subscription_id") != tenant:
            continue
        m.pop("generated_at", None)
        m.pop("version", None)  # ingest_failed: the object's version id differs per run
        out.append(json.loads(_untenant(json.dumps(m, sort_keys=True), tenant)))
    return out


def by_identity(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        messages,
        key=lambda m: (m.get("as_of", ""), m["event_type"], m.get("revision", 0), m.get("key", "")),
    )


def usage(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The usage messages (summaries, corrections, alerts), not ingest_failed."""
    return [m for m in messages if m["event_type"] != "ingest_failed"]


def event_ids(messages: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(as_of, event_type, revision) of each usage message, and (key, ingest_failed, 1) of
    each refused file."""
    return sorted(
        (
            m["key"] if m["event_type"] == "ingest_failed" else m["as_of"],
            m["event_type"],
            m["revision"],
        )
        for m in messages
    )


def duplicates(messages: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    counts = Counter(event_ids(messages))
    return [key for key, n in counts.items() if n > 1]


def numbers(summary: dict[str, Any]) -> tuple[Any, ...]:
    products = [
        (x["product"], x["utilization"], x["qlus"], x["components"]) for x in summary["products"]
    ]
    return (*products, summary["total_qlus"])


def latest_by_day(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per as-of day, the summary of the highest revision published."""
    out: dict[str, dict[str, Any]] = {}
    for m in sorted(usage(messages), key=lambda m: m["revision"]):
        out[m["as_of"]] = m
    return out


def engine_numbers(root: Path, tenant: str, as_of: str) -> tuple[Any, ...]:
    """The engine CLI's numbers for the tenant's folder as of a day (the ground truth)."""
    document, _, _ = meter_folder(
        parse_subscription(subscription(tenant)), root, date.fromisoformat(as_of)
    )
    return numbers(document["summary"])

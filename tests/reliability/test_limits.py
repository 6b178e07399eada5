"""Every AWS limit held: inputs that reach SQS's batch size, Lambda's /tmp, memory and 15
minutes, CopyObject's 5 GB... end in counted rows, rejected rows or a quarantined object
with an ``ingest_failed`` message and a reason; nothing is dead-lettered because of its
size or shape, and the tenant's next run works (docs/reliability.md, "AWS limits").

The handlers of template.yaml's stack run on moto. Large inputs are made small where the
code takes its limit from ``IngestLimits`` (each test says which limit it configures), or
produced as they are read (``Generated``) where moto would hold them whole.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import Any

import pytest
from botocore.exceptions import ClientError

import qlumeter.pipeline.ingest as ingest_module
from qlumeter.config import parse_subscription
from qlumeter.pipeline.dynamo import FileItem, ObservationItem, pack_rows
from qlumeter.pipeline.ingest import MARKER_SUFFIX, IngestLimits
from qlumeter.publishing import SNS_MESSAGE_BYTES, MessageTooLarge, fit, message_bytes
from qlumeter_cli.local import meter_folder
from qlumeter_cli.stack import Context
from tests.reliability.harness import (
    FIGURES,
    Driver,
    Faults,
    Generated,
    Killed,
    bucket_of,
    day,
    engine_numbers,
    subscription,
)
from tests.support import Pipeline, agents, peak_memory, write_file

MB = 1 << 20
KEY = "inventory/tenant=acme/source=cloud_agent/date=2026-01-01/"


def limits(p: Pipeline, **values: Any) -> None:
    """Configure the ingest's limits (``IngestLimits``) for one test."""
    p.ingest.service.limits = replace(IngestLimits(), **values)


def failures(p: Pipeline) -> list[dict[str, Any]]:
    return [m for m in p.published() if m["event_type"] == "ingest_failed"]


def manifest(tenant: str, name: str) -> FileItem:
    """The manifest that counts for a file of ``name`` (not a split in progress)."""
    (item,) = [
        i for i in FileItem.query(tenant) if i.file.endswith(f"#{name}") and "split" not in i.file
    ]
    return item


def meter_total(p: Pipeline, as_of: str) -> str:
    """The total of a direct run (a late file's queued request, if any, runs before it)."""
    *_, result = p.meter(subscription_id="acme", as_of=as_of)["results"]
    assert result["as_of"] == as_of
    return str(result["total_qlus"])


def csv_body(header: list[str], lines: Iterator[str]) -> bytes:
    return ("\n".join([",".join(header), *lines]) + "\n").encode()


def agent_lines(count: int, first: int = 0) -> Iterator[str]:
    return (f"host,a{i},h{i}.corp.example" for i in range(first, first + count))


# --- SNS's 256 KiB and DynamoDB's 400 KB ---------------------------------------------------


def test_sns_message_size_hundreds_of_late_files_are_summarised(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """300 files with long names land for a day older than the late window: each is a
    late_file_ignored alert. The summary carries them as one entry (count, first and last
    day, a sample, the full list stored beside the messages), well within SNS's limit and
    a pending record's 400 KB; the next runs go on."""
    p = pipeline
    p.put_subscription(subscription("acme"))  # late_data_days 3
    for n in range(6):
        write_file(tmp_path, "cloud_agent", day(n), agents(5), name="agents")
    p.upload(tmp_path)
    driver = Driver(p)
    driver.drain()
    for n in range(6):
        driver.meter("acme", day(n).isoformat())
    names = [f"{n:03d}-{'x' * 800}.csv" for n in range(300)]
    for name in names:
        p.upload_file(KEY + name, csv_body(["asset_type", "agent_id"], iter(["host,late"])))
    driver.drain()
    driver.honour_late()
    driver.meter("acme", day(6).isoformat())
    (summary,) = [m for m in p.published() if m["as_of"] == day(6).isoformat()]
    (late,) = [a for a in summary["alerts"] if a["type"] == "late_file_ignored"]
    assert (late["count"], late["first_day"], late["last_day"]) == (300, "2026-01-01", "2026-01-01")
    assert [a["path"] for a in late["sample"]] == [KEY[10:] + name for name in names[:10]]
    bucket, key = late["full_list"].removeprefix("s3://").split("/", 1)
    listed = json.loads(p.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert sorted(a["path"] for a in listed if a["type"] == "late_file_ignored") == [
        KEY[10:] + name for name in names
    ]
    size = message_bytes(summary, "usage_summary", "acme")
    FIGURES["limits: SNS, summary with 300 late files of 800-character names (bytes)"] = size
    assert size < 20_000 < 300 * 800  # unbounded, the list alone is over 240,000 bytes
    driver.meter("acme", day(7).isoformat())
    assert [m["event_type"] for m in p.published() if m["as_of"] == day(7).isoformat()] == [
        "usage_summary"
    ]


def test_sns_message_size_a_message_over_the_limit_is_cut_to_fit() -> None:
    """A message over SNS's limit has its alerts' samples cut (3, then none) until it fits;
    one no cut can bring within the limit is refused before it is recorded."""
    sample = [{"path": "p" * 1000, "warning": "w"} for _ in range(10)]
    alerts = [{"type": "data_warning", "day": "2026-01-01", "count": 10, "sample": sample}]
    message = {"event_type": "usage_summary", "products": [], "alerts": alerts * 30}
    assert message_bytes(message, "usage_summary", "acme") > 300_000
    cut = fit(message, "usage_summary", "acme", limit=SNS_MESSAGE_BYTES)
    assert message_bytes(cut, "usage_summary", "acme") <= SNS_MESSAGE_BYTES
    assert [(len(a["sample"]), a["sample_size"]) for a in cut["alerts"]] == [(3, 10)] * 30
    assert fit(cut, "usage_summary", "acme") is cut  # within the limit: as it is
    with pytest.raises(MessageTooLarge, match="over SNS's 1,000 bytes"):
        fit(message, "usage_summary", "acme", limit=1_000)


def test_sns_message_size_a_message_refused_for_good_blocks_no_later_run(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """The topic refuses a day's summary for good (InvalidParameter): the message is kept
    beside the messages with the reason, the run says so, and the next day's run publishes
    as usual instead of sending the refused message again."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    for n in range(2):
        write_file(tmp_path, "cloud_agent", day(n), agents(5), name="agents")
    p.upload(tmp_path)
    driver = Driver(p)
    driver.drain()
    client = p.meter_app.service.publisher.client
    publish = client.publish

    def refusing(**call: Any) -> Any:  # SNS's answer to a message it will never take
        if json.loads(call["Message"])["as_of"] == day(0).isoformat():
            answer = {"Error": {"Code": "InvalidParameter", "Message": "Message too long"}}
            raise ClientError(answer | {"ResponseMetadata": {"HTTPStatusCode": 400}}, "Publish")
        return publish(**call)

    client.publish = refusing
    driver.meter("acme", day(0).isoformat())
    (run,) = [r for r in p.runs if r.as_of == day(0)]
    (refused,) = run.refused
    assert refused.startswith("usage_summary of 2026-01-01: An error occurred (InvalidParameter)")
    key = refused.rsplit("kept as ", 1)[1]
    assert key == "messages/acme/2026-01-01/refused-usage_summary-r1.json"
    body = p.s3.get_object(Bucket=p.meter_app.service.state_bucket, Key=key)["Body"].read()
    kept = json.loads(body)
    assert "Message too long" in kept["reason"] and kept["message"]["as_of"] == "2026-01-01"
    driver.meter("acme", day(1).isoformat())
    assert [(m["event_type"], m["as_of"]) for m in p.published()] == [
        ("usage_summary", "2026-01-02")
    ]


def test_dynamodb_item_size_a_row_that_encodes_past_400_kb_is_rejected_alone(
    pipeline: Pipeline,
) -> None:
    """A valid row whose fields fit the 16,384-character limit but encode past what an item
    holds (characters outside the BMP, 12 bytes each in JSON) is rejected with the reason;
    the file's other rows count and nothing is dead-lettered."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    wide = "\U0001f600" * 16_000
    lines = ["host,a1,,,", f"host,a2,{wide},{wide},{wide}", "host,a3,,,"]
    body = csv_body(["asset_type", "agent_id", "asset_id", "hostname", "netbios"], iter(lines))
    p.upload_file(KEY + "wide-row.csv", body)
    driver = Driver(p)
    driver.drain()
    assert driver.dead == [] and failures(p) == []
    item = manifest("acme", "wide-row.csv")
    assert (item.status, int(item.accepted), int(item.rejected)) == ("ok", 2, 1)
    listed = p.s3.get_object(Bucket=bucket_of(p), Key=item.rejects_key)["Body"].read()
    (reject,) = [json.loads(line) for line in listed.splitlines()]
    assert (reject["line"], reject["field"]) == (3, "row")
    assert reject["reason"].endswith("bytes stored: over the 350,000 a row may take")
    stored = max(len(i.row.encode()) for i in ObservationItem.scan())
    FIGURES["limits: DynamoDB, largest item of a file with a 576 KB row (bytes)"] = stored
    assert stored < 1_000


# --- SQS: SendMessageBatch's 1 MiB ------------------------------------------------------


def test_sqs_batch_size_a_large_csv_header_is_named_by_the_parts_not_copied(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A 114 KB CSV header (a long unknown column) and ten parts: each part names the
    header by its length instead of carrying it, so a batch of ten parts stays far below
    SendMessageBatch's 1 MiB and the file is counted (the split sizes are configured small:
    200 KB objects are split into 60 KB parts)."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    p.ingest.service.split_bytes, p.ingest.service.part_bytes = 200_000, 60_000
    rows = [dict(row, **{"z" * 114_000: ""}) for row in agents(14_000)]
    write_file(tmp_path, "cloud_agent", day(0), rows, name="wide")
    sent: list[int] = []
    send = p.ingest.service.parts.send

    def recorded(parts: list[Any]) -> None:
        sent.extend(len(json.dumps(part.__dict__)) for part in parts)
        send(parts)

    p.ingest.service.parts.send = recorded
    p.upload(tmp_path)
    driver = Driver(p)
    driver.drain()
    assert driver.dead == [] and len(sent) >= 10 and max(sent) < 1_000
    FIGURES["limits: SQS, a part's message behind a 114 KB header (bytes)"] = max(sent)
    item = manifest("acme", "wide.csv")
    assert (item.status, int(item.accepted), int(item.parts)) == ("ok", 14_000, len(sent))
    assert meter_total(p, "2026-01-01") == engine_numbers(tmp_path, "acme", "2026-01-01")[-1]


def test_sqs_batch_size_a_new_version_replaces_the_old_only_once_every_part_is_in(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A file's second version, split into parts: while its parts are queued (or failing)
    the first version goes on counting; once the last part is in, the second counts."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    p.ingest.service.split_bytes, p.ingest.service.part_bytes = 20_000, 8_000
    first = write_file(tmp_path, "cloud_agent", day(0), agents(20), name="agents")
    p.upload(tmp_path)
    Driver(p).drain()
    assert meter_total(p, "2026-01-01") == engine_numbers(tmp_path, "acme", "2026-01-01")[-1]
    before = meter_total(p, "2026-01-01")
    write_file(tmp_path, "cloud_agent", day(0), agents(600), name="agents")
    p.upload_file(KEY + first.name, first.read_bytes())
    (notification,) = [m for m in p.receive(p.queue_url) if "TestEvent" not in m["Body"]]
    assert p.deliver([notification])["batchItemFailures"] == []
    parts = p.receive(p.queue_url)
    assert len(parts) >= 3 and manifest("acme", "agents.csv").status == "ok"
    assert meter_total(p, "2026-01-01") == before  # the first version still counts
    assert p.deliver(parts[:1])["batchItemFailures"] == []
    assert meter_total(p, "2026-01-01") == before
    driver = Driver(p)
    driver.drain(parts[1:])
    assert driver.dead == []
    assert meter_total(p, "2026-01-01") == engine_numbers(tmp_path, "acme", "2026-01-01")[-1]
    assert int(manifest("acme", "agents.csv").accepted) == 600


# --- Lambda's /tmp ----------------------------------------------------------------------


def test_lambda_tmp_the_rejects_of_a_small_gzip_bomb_stay_bounded(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small gzip of 20,000 bad lines under a long key expands to ~19 MB of rejects: the
    first ones are listed in full, the rest counted by reason in the last line, and /tmp
    holds no more than the list. Configured: the list keeps 1 MiB, and /tmp holds 4 MiB
    (standing for Lambda's 512 MB against the default list of 32 MiB)."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    limits(p, rejects_kept_bytes=MB)

    class SmallTmp(SpooledTemporaryFile):  # type: ignore[type-arg]
        def write(self, data: Any) -> int:
            if self.tell() + len(data) > 4 * MB:
                raise OSError(errno.ENOSPC, "No space left on device")
            return int(super().write(data))

    monkeypatch.setattr(ingest_module, "SpooledTemporaryFile", SmallTmp)
    key = f"inventory/tenant=acme/source=scanner/date=2026-01-02/{'n' * 800}.csv.gz"
    body = gzip.compress(b"asset_type,agent_id,vuln_count\n" + b"host,a,-1\n" * 20_000, mtime=0)
    assert len(body) < 2_000
    p.upload_file(key, body)
    driver = Driver(p)
    driver.drain()
    assert driver.dead == [] and failures(p) == []
    item = manifest("acme", f"{'n' * 800}.csv.gz")
    assert (item.status, int(item.rejected)) == ("ok", 20_000)
    listed = p.s3.get_object(Bucket=bucket_of(p), Key=item.rejects_key)["Body"].read()
    FIGURES["limits: /tmp, rejects of a 2 KB gzip bomb listed (bytes, of ~19 MB)"] = len(listed)
    assert MB - 2_000 < len(listed) < MB + 4_000
    *rows, last = [json.loads(line) for line in listed.splitlines()]
    assert [r["line"] for r in rows] == list(range(2, 2 + len(rows)))
    assert last["line"] == 2 + len(rows) and last["field"] == "_row"
    assert f"{20_000 - len(rows):,} more rejected rows" in last["reason"]
    assert f"vuln_count: must be >= 0, got -1 ({20_000 - len(rows):,})" in last["reason"]
    assert meter_total(p, "2026-01-02") == "0"  # the next run works


# --- Lambda's memory --------------------------------------------------------------------


def test_lambda_memory_entities_with_long_ids_are_counted_in_bounded_memory(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip of rows with unique 16,000-character agent ids: the entities the file touches
    are counted (the manifest's ``entities``) without holding the ids. Peak memory of the
    ingest with 300 and with 3,000 such rows: within 8 MB of each other (the ids alone are
    43 MB more). The rows are packed and encoded as stored, then dropped: moto would hold
    each one in the test's memory."""
    p = pipeline
    p.put_subscription(subscription("acme"))

    def written(ref: Any, version: str, rows: Any) -> int:
        return sum(1 for _ in pack_rows(rows))

    monkeypatch.setattr(p.ingest.service.store, "write_rows", written)
    peaks = []
    for count in (300, 3_000):
        lines = (f"host,{i:06d}{'x' * 15_994}" for i in range(count))
        body = gzip.compress(csv_body(["asset_type", "agent_id"], lines), 1, mtime=0)
        p.upload_file(f"{KEY}ids-{count}.csv.gz", body)
        messages = [m for m in p.receive(p.queue_url) if "TestEvent" not in m["Body"]]
        peaks.append(peak_memory(lambda messages=messages: p.deliver(messages)))
        item = manifest("acme", f"ids-{count}.csv.gz")
        assert (item.status, int(item.accepted), int(item.entities)) == ("ok", count, count)
    assert peaks[1] - peaks[0] < 8 * MB, [f"{peak / MB:.1f} MB" for peak in peaks]
    FIGURES["limits: memory, ingest peak, 3,000 vs 300 ids of 16,000 characters (KB more)"] = (
        peaks[1] - peaks[0]
    ) // 1024


@dataclass
class LazyObject:
    """An object of ``head`` + ``size`` filler bytes + ``tail``, served as S3 would (a
    stream, or a byte range) but produced as it is read."""

    head: bytes
    size: int
    tail: bytes
    filler: bytes

    @property
    def length(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def range(self, start: int, end: int) -> io.BufferedReader:
        stream = io.BufferedReader(Generated(self.head, self.size, self.tail, filler=self.filler))
        skip = start
        while skip:  # skipped in blocks: never held whole
            skip -= len(stream.read(min(skip, MB)))
        return io.BufferedReader(_Bounded(stream, end - start))


class _Bounded(io.RawIOBase):
    def __init__(self, stream: io.BufferedReader, left: int) -> None:
        self._stream, self._left = stream, left

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._stream.read(min(len(buffer), self._left))
        self._left -= len(chunk)
        memoryview(buffer).cast("B")[: len(chunk)] = chunk
        return len(chunk)


def serve(p: Pipeline, monkeypatch: pytest.MonkeyPatch, key: str, obj: LazyObject) -> dict:
    """A notification of ``key`` as an object of ``obj``'s size, and ``obj`` served for it
    (S3's GetObject streams, moto's holds the whole body)."""
    objects = p.ingest.service.objects
    real_open, real_range = objects.open, objects.open_range

    def open_(bucket: str, name: str, version: str | None) -> Any:
        return obj.range(0, obj.length) if name == key else real_open(bucket, name, version)

    def open_range(bucket: str, name: str, version: str | None, start: int, end: int) -> Any:
        if name == key:
            return obj.range(start, end)
        return real_range(bucket, name, version, start, end)

    monkeypatch.setattr(objects, "open", open_)
    monkeypatch.setattr(objects, "open_range", open_range)
    p.upload_file(key, b"placeholder")
    (message,) = [m for m in p.receive(p.queue_url) if "TestEvent" not in m["Body"]]
    body = json.loads(message["Body"])
    body["Records"][0]["s3"]["object"]["size"] = obj.length
    message["Body"] = json.dumps(body)
    return dict(message)


@pytest.mark.budget(120)
def test_lambda_memory_a_split_file_with_a_64_mb_line_is_planned_in_bounded_memory(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain CSV split into parts, one of its lines 64 MiB long: the plan reads lines in
    chunks of at most the line limit (1 MiB) and the part holding the line rejects it. The
    peak memory of planning and ingesting every part is within 8 MB of that of the same
    file with a 2 MiB line. The objects are served as they are read (moto would hold them
    whole); the split sizes are configured (8 MiB objects, 4 MiB parts)."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    p.ingest.service.split_bytes, p.ingest.service.part_bytes = 8 * MB, 4 * MB
    head = csv_body(["asset_type", "agent_id", "fqdn"], agent_lines(5_000)) + b"host,long,"
    tail = "".join(f"\n{line}" for line in agent_lines(5_000, 50_000)).encode() + b"\n"
    peaks = []
    for size in (2, 64):
        key = f"{KEY}long-{size}.csv"
        message = serve(p, monkeypatch, key, LazyObject(head, size * MB, tail, b"x"))
        driver = Driver(p)
        peaks.append(peak_memory(lambda message=message, driver=driver: driver.drain([message])))
        assert driver.dead == []
        item = manifest("acme", key.rsplit("/", 1)[1])
        assert (item.status, int(item.accepted), int(item.rejected)) == ("ok", 10_000, 1)
    assert peaks[1] - peaks[0] < 8 * MB, [f"{peak / MB:.1f} MB" for peak in peaks]
    FIGURES["limits: memory, split file peak, 64 MiB vs 2 MiB line (KB more)"] = (
        peaks[1] - peaks[0]
    ) // 1024


# --- Lambda's 15 minutes ----------------------------------------------------------------


@pytest.mark.budget(120)
def test_lambda_time_a_stray_quote_does_not_stop_the_split(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """A quote left open in a plain CSV (``24"`` in an unquoted cell, or a cell that opens
    a quote never closed): past the quote window the plan cuts at line starts again instead
    of making the rest of the file one part, and the parts read the file as the whole-file
    reader does (the rows the open quote spoils rejected, at the same lines). Configured:
    500 KB objects in 32 KiB parts, a quote window of 160 KiB (the reader ends a quoted cell
    at csv's field limit, 131,072 characters: of this ASCII file, 128 KiB)."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    p.ingest.service.split_bytes, p.ingest.service.part_bytes = 500_000, 32 << 10
    limits(p, quote_window_bytes=160 << 10)
    header = ["asset_type", "agent_id", "fqdn"]
    for name, stray in (("monitor", 'host,a-1,monitor 24"'), ("open", 'host,"a-1,x')):
        lines = [*agent_lines(10), stray, *agent_lines(18_000, 100)]
        path = tmp_path / KEY / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(csv_body(header, iter(lines)))
        p.upload_file(KEY + path.name, path.read_bytes())
        driver = Driver(p)
        driver.drain()
        assert driver.dead == []
        item = manifest("acme", path.name)
        assert item.status == "ok"
        assert int(item.parts) >= (path.stat().st_size - (160 << 10)) // (32 << 10) - 1
        FIGURES[f"limits: 15 minutes, parts of a 550 KB CSV with a stray quote ({name})"] = int(
            item.parts
        )
    expected, _, read = meter_folder(parse_subscription(subscription("acme")), tmp_path, day(0))
    assert meter_total(p, "2026-01-01") == expected["summary"]["total_qlus"]
    stored = sum(len(json.loads(item.row)) for item in ObservationItem.scan())
    assert stored == read.rows
    listed = p.s3.list_objects_v2(Bucket=bucket_of(p), Prefix="rejects/").get("Contents", [])
    rejects = [
        json.loads(line)
        for obj in listed
        for line in p.s3.get_object(Bucket=bucket_of(p), Key=obj["Key"])["Body"].read().splitlines()
    ]
    assert sorted((r["path"], r["line"], r["field"]) for r in rejects) == sorted(
        (r["path"], r["line"], r["field"]) for r in expected["ingest"]["rejects"]
    )
    assert rejects  # the open quote spoils rows


class Runtime:
    """Lambda's clock and its 15 minutes: each row read costs ``row_seconds`` of the
    invocation's time; an invocation still reading past ``seconds`` is ended (``Killed``)
    as Lambda ends one at its timeout."""

    def __init__(self, p: Pipeline, monkeypatch: pytest.MonkeyPatch, row_seconds: float) -> None:
        self.now, self.ends, self.row_seconds = 0.0, 0.0, row_seconds
        p.ingest.service.clock = lambda: self.now
        real = ingest_module.iter_file

        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            for item in real(*args, **kwargs):
                self.now += self.row_seconds
                if self.now > self.ends:
                    raise Killed("the invocation ran past its timeout")
                yield item

        monkeypatch.setattr(ingest_module, "iter_file", timed)

    def context(self) -> Context:
        """A fresh invocation of 15 minutes."""
        self.ends = self.now + 900
        return Context("ingest", memory_limit_in_mb=2048)


def test_lambda_time_a_file_past_the_rows_one_invocation_reads_is_quarantined(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip (never split) of 20,000 rows where one invocation reads 18,000 within its 15
    minutes: past ``max_rows`` (configured 5,000 for the test) it is quarantined with the
    reason, instead of being ended at the timeout on every delivery; so is an object over
    ``max_object_bytes`` (configured 1 MB), before it is read."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    limits(p, max_rows=5_000, max_object_bytes=MB)
    runtime = Runtime(p, monkeypatch, row_seconds=900 / 18_000)
    lines = agent_lines(20_000)
    body = gzip.compress(csv_body(["asset_type", "agent_id", "fqdn"], lines), mtime=0)
    p.upload_file(KEY + "many.csv.gz", body)
    p.upload_file(KEY + "big.jsonl", b'{"asset_type": "host", "agent_id": "a1"}\n' * 30_000)
    driver = Driver(p, context=runtime.context)
    driver.drain()
    assert driver.dead == [] and driver.kills == 0
    reasons = {m["key"].rsplit("/", 1)[1]: m["reason"] for m in failures(p)}
    assert reasons["many.csv.gz"].startswith("more than 5,000 rows")
    assert reasons["big.jsonl"].startswith("object of 1,230,000 bytes: over 1,048,576")
    assert {manifest("acme", name).status for name in reasons} == {"unreadable"}
    p.upload_file(KEY + "few.csv", csv_body(["asset_type", "agent_id", "fqdn"], agent_lines(10)))
    driver.drain()
    assert manifest("acme", "few.csv").status == "ok" and meter_total(p, "2026-01-01") != "0"


def test_lambda_time_a_file_still_read_near_the_timeout_is_quarantined(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JSON array (never split) slower to read than one invocation lasts (20,000 rows at
    0.05 s each): at ``reserve_seconds`` before the end, reading stops and the file is
    quarantined with the reason."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    runtime = Runtime(p, monkeypatch, row_seconds=0.05)
    rows = [{"asset_type": "host", "agent_id": f"a{i}"} for i in range(20_000)]
    p.upload_file(KEY + "slow.json", json.dumps(rows).encode())
    driver = Driver(p, context=runtime.context)
    driver.drain()
    assert driver.dead == [] and driver.kills == 0
    (failed,) = failures(p)
    assert failed["reason"].startswith("not read within the function's time limit")
    assert manifest("acme", "slow.json").status == "unreadable"


# --- CopyObject's 5 GB ------------------------------------------------------------------


def test_copy_object_5gb_an_object_too_large_to_copy_is_quarantined_by_a_marker(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Unreadable objects larger than CopyObject copies (S3 answers InvalidRequest, as for
    a source over 5 GB): a whole gzip, and a split CSV whose parts find its header broken.
    Each gets a marker under ``quarantine/`` naming it and the reason, and an
    ``ingest_failed`` message naming the marker. Configured: the copy limit is 1 KB."""
    p = pipeline
    p.put_subscription(subscription("acme"))
    limits(p, copy_max_bytes=1024)
    p.ingest.service.split_bytes, p.ingest.service.part_bytes = 4_000, 2_000
    faults = Faults(monkeypatch)
    faults.add("throttle", "s3", "CopyObject", times=100, code="InvalidRequest", status=400)
    p.upload_file(KEY + "broken.csv.gz", b"\x1f\x8b\x08\x00 not gzip" * 200)
    twice = csv_body(["asset_type", "agent_id", "agent_id"], agent_lines(400))
    p.upload_file(KEY + "twice.csv", twice)
    driver = Driver(p)
    driver.drain()
    assert driver.dead == []
    failed = {m["key"].rsplit("/", 1)[1]: m for m in failures(p)}
    assert set(failed) == {"broken.csv.gz", "twice.csv"}
    for name, message in failed.items():
        assert message["quarantined_as"] == f"quarantine/{KEY}{name}{MARKER_SUFFIX}"
        note = p.s3.get_object(Bucket=bucket_of(p), Key=message["quarantined_as"])["Body"]
        assert json.loads(note.read())["reason"] == message["reason"]
    assert "duplicate CSV header columns" in failed["twice.csv"]["reason"]
    faults.clear()
    write_file(tmp_path, "cloud_agent", day(0), agents(5), name="fine")
    p.upload(tmp_path)
    driver.drain()
    assert meter_total(p, "2026-01-01") == engine_numbers(tmp_path, "acme", "2026-01-01")[-1]

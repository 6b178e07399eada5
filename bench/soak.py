"""Soak: many tenants' files at once through the real handlers, against a local moto server.

A ``moto.server.ThreadedMotoServer`` listens on 127.0.0.1 only (a free port), started and
stopped here. ``AWS_ENDPOINT_URL`` points every client at it (boto3, Powertools and
PynamoDB, whose botocore clients honour it; checked below) before the handler modules are
loaded. Worker processes play concurrent Lambda containers: each polls the ingest queue
(batch size 1, as deployed), runs the ingest handler and deletes or releases the message;
then the meter handler meters every tenant. Prints files/s and rows/s, and checks that no
invocation failed and no row was lost: each tenant's stored rows equal the rows the engine
reads from the same folder, and its usage summary equals the engine CLI's numbers.

    python bench/soak.py [--tenants 20] [--files 10] [--rows 200] [--workers 3]
                         [--deadline 600] [--metered 4]

Needs moto's server extra (``pip install 'moto[server]'``; ``make reliability`` does it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import random
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).absolute().parents[1]
REGION = "eu-west-1"
BUCKET = "soak-inventory"
METER_ARN = "arn:aws:sqs:eu-west-1:123456789012:soak-meter.fifo"
START = date(2026, 1, 1)
ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_RETRY_MODE": "standard",
    "OBSERVATIONS_TABLE": "soak-observations",
    "FILES_TABLE": "soak-files",
    "USAGE_TABLE": "soak-usage",
    "SUBSCRIPTIONS_TABLE": "soak-subscriptions",
    "IDEMPOTENCY_TABLE": "soak-idempotency",
    "STATE_BUCKET": "soak-state",
    "POWERTOOLS_SERVICE_NAME": "qlumeter",
    "POWERTOOLS_METRICS_NAMESPACE": "qlumeter",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def subscription(tenant: str) -> dict[str, Any]:
    return {
        "subscription_id": tenant,
        "start_date": START.isoformat(),
        "sources": {"scanner": {"mode": "delta"}},
        "products": {"VMDR": {"ratio": "1.5"}, "CSAM": {"ratio": "1"}, "EDR": {"ratio": "2.85"}},
    }


# --- the local endpoint ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on the loopback interface for the duration of the block."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def load(name: str) -> ModuleType:
    """A function's handler module (``functions/<name>/app.py``) with this environment."""
    spec = importlib.util.spec_from_file_location(
        f"soak_{name}_app", ROOT / "functions" / name / "app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def local_only(endpoint: str) -> None:
    """Every client the handlers use must point at the local server."""
    import boto3

    from qlumeter.pipeline.dynamo import TABLES

    for model in TABLES.values():
        host = model._get_connection().connection.client._endpoint.host
        assert host == endpoint, f"PynamoDB talks to {host}"
    host = boto3.client("s3", region_name=REGION)._endpoint.host
    assert host == endpoint, f"boto3 talks to {host}"


class Context:
    """The parts of a Lambda context the handlers use."""

    def __init__(self, name: str) -> None:
        self.function_name = name
        self.memory_limit_in_mb = 2048
        self.aws_request_id = "00000000-0000-0000-0000-000000000000"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


class NoRequests:
    """The ingest's meter queue: the soak asks for the runs itself."""

    def send(self, requests: list[Any]) -> None:
        pass


# --- setup -------------------------------------------------------------------------------


def create_resources(endpoint: str) -> dict[str, str]:
    """Tables, buckets, the ingest queue with the bucket's notifications, the topic and a
    consumer queue; returns the settings the handlers read."""
    import boto3

    from qlumeter.pipeline.dynamo import TABLES, bind

    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    location = {"LocationConstraint": REGION}
    for bucket in (BUCKET, ENV["STATE_BUCKET"]):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    queue = sqs.create_queue(QueueName="soak-ingest", Attributes={"VisibilityTimeout": "300"})
    queue_url = queue["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn["Attributes"]["QueueArn"],
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inventory/"}]}},
                }
            ]
        },
    )
    topic = sns.create_topic(Name="soak-usage")["TopicArn"]
    consumer = sqs.create_queue(QueueName="soak-consumer")["QueueUrl"]
    meter = sqs.create_queue(QueueName="soak-meter.fifo", Attributes={"FifoQueue": "true"})
    consumer_arn = sqs.get_queue_attributes(QueueUrl=consumer, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=consumer_arn["Attributes"]["QueueArn"])
    bind({name: ENV[f"{name.upper()}_TABLE"] for name in TABLES}, region=REGION)
    for model in TABLES.values():
        model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=ENV["IDEMPOTENCY_TABLE"],
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    sqs.purge_queue(QueueUrl=queue_url)  # the s3:TestEvent
    return {
        "TOPIC_ARN": topic,
        "INGEST_QUEUE_URL": queue_url,
        "CONSUMER_URL": consumer,
        "METER_QUEUE_URL": meter["QueueUrl"],
    }


def agent_rows(tenant: int, n: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for _ in range(count):
        host = rng.randrange(count * 2)
        rows.append(
            {
                "asset_type": "host",
                "agent_id": f"t{tenant}-a{host}",
                "fqdn": f"h{host}.t{tenant}.example",
                "modules": "vmdr;edr" if host % 3 == 0 else "vmdr",
                "vuln_count": str((host + n) % 4),
            }
        )
    rows.append({"asset_type": "spaceship", "agent_id": "bad"})  # one rejected row a file
    return rows


def write_inventory(root: Path, tenants: int, files: int, rows: int) -> list[tuple[Path, str]]:
    """Each tenant's files, one a day, alternately CSV and JSON Lines; returns (path, key)."""
    rng = random.Random(20260101)
    out = []
    for t in range(tenants):
        for n in range(files):
            on = START + timedelta(days=n)
            fmt = "csv" if n % 2 == 0 else "jsonl"
            key = f"inventory/tenant=soak{t:03d}/source=cloud_agent/date={on}/agents.{fmt}"
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            records = agent_rows(t, n, rows, rng)
            if fmt == "csv":
                columns = ["asset_type", "agent_id", "fqdn", "modules", "vuln_count"]
                lines = [",".join(columns)]
                lines += [",".join(str(r.get(c, "")) for c in columns) for r in records]
                path.write_text("\n".join(lines) + "\n")
            else:
                path.write_text("".join(json.dumps(r) + "\n" for r in records))
            out.append((path, key))
    return out


# --- workers (separate processes: concurrent Lambda containers) ---------------------------


@dataclass
class WorkerStats:
    invocations: int = 0
    failures: int = 0
    first: float = 0.0  # wall-clock time of the first invocation
    last: float = 0.0  # and of the end of the last one
    errors: list[str] = field(default_factory=list)


def _start_worker(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path[:0] = [str(ROOT)]
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the handlers' metrics (EMF) lines


def ingest_worker(env: dict[str, str], deadline: float) -> WorkerStats:

    from qlumeter_cli.stack import sqs_event

    """Poll the ingest queue until it is empty (or the deadline), one message at a time."""
    _start_worker(env)
    import boto3

    app = load("ingest")
    app.service.meter_queue = NoRequests()
    local_only(env["AWS_ENDPOINT_URL"])
    sqs = boto3.client("sqs", region_name=REGION)
    queue = env["INGEST_QUEUE_URL"]
    stats = WorkerStats()
    while time.time() < deadline:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1).get("Messages", [])
        if not got:
            if _queue_empty(sqs, queue):  # nothing waiting, nothing in flight elsewhere
                break
            time.sleep(0.1)
            continue
        message = got[0]
        event = sqs_event([message], "arn:aws:sqs:eu-west-1:123456789012:soak-ingest")
        stats.invocations += 1
        stats.first = stats.first or time.time()
        try:
            response = app.handler(event, Context("ingest"))
            failed = bool(response["batchItemFailures"])
        except Exception as exc:  # the invocation failed: SQS would redeliver
            failed = True
            stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        if failed:
            stats.failures += 1
            sqs.change_message_visibility(
                QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        stats.last = time.time()
    return stats


def _queue_empty(sqs: Any, queue: str) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    counts = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=names)["Attributes"]
    return all(int(counts[name]) == 0 for name in names)


def meter_worker(
    env: dict[str, str], tenants: list[str], as_of: str, deadline: float
) -> WorkerStats:
    """Hand each tenant's request to the meter handler, as the meter queue's poller would."""
    _start_worker(env)
    from qlumeter.pipeline.requests import MeterRequest
    from qlumeter_cli.stack import sqs_event

    app = load("meter")
    local_only(env["AWS_ENDPOINT_URL"])
    stats = WorkerStats(first=time.time())
    for tenant in tenants:
        if time.time() > deadline:
            stats.errors.append(f"{tenant}: not metered before the deadline")
            continue
        stats.invocations += 1
        request = MeterRequest(
            subscription_id=tenant, as_of=as_of, reason="request", requested_at=datetime.now(UTC)
        )
        message: Any = {
            "MessageId": tenant,
            "ReceiptHandle": tenant,
            "Body": request.body(),
            "MD5OfBody": "",
            "Attributes": {"MessageGroupId": tenant, "MessageDeduplicationId": tenant},
        }
        try:
            response = app.handler(sqs_event([message], METER_ARN), Context("meter"))
            if response["batchItemFailures"]:
                raise RuntimeError("the run failed")
        except Exception as exc:
            stats.failures += 1
            stats.errors.append(f"{tenant}: {type(exc).__name__}: {exc}"[:300])
    stats.last = time.time()
    return stats


# --- the soak ----------------------------------------------------------------------------


@dataclass
class Figures:
    tenants: int
    files: int
    rows: int
    rejected_rows: int
    workers: int
    ingest_seconds: float
    files_per_second: float
    rows_per_second: float
    meter_seconds: float
    tenants_metered: int
    tenants_per_second: float
    invocations: int
    failed_invocations: int
    rows_lost: int
    rows_counted_twice: int
    summaries_differing_from_engine: int
    errors: list[str]


def soak(
    tenants: int = 20,
    files: int = 10,
    rows: int = 200,
    workers: int = 3,
    deadline: float = 600,
    metered: int | None = 4,
) -> Figures:
    """Run the soak; everything is bounded by ``deadline`` seconds and the given counts.

    Every tenant's stored rows are checked; ``metered`` tenants (all when None) are also
    metered and their summaries compared with the engine's: moto answers a DynamoDB query
    by scanning the whole table, so metering under moto measures moto more than the
    pipeline."""
    started = time.time()
    with tempfile.TemporaryDirectory() as folder, moto_server() as endpoint:
        root = Path(folder)
        saved = dict(os.environ)
        try:
            os.environ.update(ENV, AWS_ENDPOINT_URL=endpoint)
            env = {**ENV, "AWS_ENDPOINT_URL": endpoint, **create_resources(endpoint)}
            os.environ.update(env)
            local_only(endpoint)
            sample = tenants if metered is None else min(metered, tenants)
            return _run(root, env, tenants, files, rows, workers, sample, started + deadline)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _run(
    root: Path,
    env: dict[str, str],
    tenants: int,
    files: int,
    rows: int,
    workers: int,
    metered: int,
    deadline: float,
) -> Figures:
    import boto3

    from qlumeter.config import parse_subscription
    from qlumeter.pipeline.dynamo import DynamoStore, ObservationItem, unpack_rows
    from qlumeter_cli.local import LocalInventory, meter_folder, read_days

    store = DynamoStore()
    names = [f"soak{t:03d}" for t in range(tenants)]
    subs = {name: parse_subscription(subscription(name)) for name in names}
    for sub in subs.values():
        store.put_subscription(sub)
    s3 = boto3.client("s3", region_name=REGION)
    objects = write_inventory(root, tenants, files, rows)
    for path, key in objects:
        s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    context = multiprocessing.get_context("spawn")
    as_of = (START + timedelta(days=files - 1)).isoformat()
    with context.Pool(workers) as pool:
        ingest = pool.starmap(ingest_worker, [(env, deadline)] * workers)
        shares = [names[:metered][i::workers] for i in range(workers)]
        meter = pool.starmap(meter_worker, [(env, share, as_of, deadline) for share in shares])
    busy = [s for s in ingest if s.invocations]
    ingest_seconds = max(s.last for s in busy) - min(s.first for s in busy)  # not start-up
    meter_seconds = max(s.last for s in meter) - min(s.first for s in meter) if metered else 0.0
    # what the engine reads from the same folder, tenant by tenant
    expected_rows, rejected, differing, lost, twice = 0, 0, 0, 0, 0
    summaries = _summaries(env["CONSUMER_URL"])
    for name in names:
        document, _, read = meter_folder(subs[name], root, date.fromisoformat(as_of))
        local = {
            (o.path, o.line)
            for _, _, rows in read_days(root, name, date.fromisoformat(as_of), LocalInventory())
            for o in rows
        }
        expected_rows += read.rows
        rejected += len(read.rejects)
        stored: dict[tuple[str, int], int] = {}
        current = {
            m.ref.key: m.version for m in store.manifests(name, START, date.fromisoformat(as_of))
        }
        for item in ObservationItem.scan(ObservationItem.pk.startswith(f"{name}#")):
            file_key, version, _ = item.sk.rsplit("#", 2)
            if current.get(file_key) == version:
                for line, _ in unpack_rows(item.row):
                    stored[(file_key, line)] = stored.get((file_key, line), 0) + 1
        lost += len(local - set(stored))
        twice += sum(n - 1 for n in stored.values())
        summary = summaries.get(name)
        if name in names[:metered] and (
            summary is None or _numbers(summary) != _numbers(document["summary"])
        ):
            differing += 1
    errors = [e for s in ingest + meter for e in s.errors]
    return Figures(
        tenants=tenants,
        files=len(objects),
        rows=expected_rows,
        rejected_rows=rejected,
        workers=workers,
        ingest_seconds=round(ingest_seconds, 2),
        files_per_second=round(len(objects) / ingest_seconds, 1),
        rows_per_second=round((expected_rows + rejected) / ingest_seconds, 1),
        meter_seconds=round(meter_seconds, 2),
        tenants_metered=metered,
        tenants_per_second=round(metered / meter_seconds, 2) if meter_seconds else 0.0,
        invocations=sum(s.invocations for s in ingest + meter),
        failed_invocations=sum(s.failures for s in ingest + meter),
        rows_lost=lost,
        rows_counted_twice=twice,
        summaries_differing_from_engine=differing,
        errors=errors[:10],
    )


def _summaries(consumer_url: str) -> dict[str, dict[str, Any]]:
    import boto3

    sqs = boto3.client("sqs", region_name=REGION)
    out: dict[str, dict[str, Any]] = {}
    while batch := sqs.receive_message(QueueUrl=consumer_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for m in batch:
            body = json.loads(json.loads(m["Body"])["Message"])
            if body["event_type"] == "usage_summary":
                out[body["subscription_id"]] = body
            sqs.delete_message(QueueUrl=consumer_url, ReceiptHandle=m["ReceiptHandle"])
    return out


def _numbers(summary: dict[str, Any]) -> tuple[Any, ...]:
    products = [(p["product"], p["utilization"], p["qlus"]) for p in summary["products"]]
    return (*products, summary["total_qlus"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--files", type=int, default=10, help="files per tenant (one a day)")
    parser.add_argument("--rows", type=int, default=200, help="rows per file")
    parser.add_argument("--workers", type=int, default=3, help="concurrent ingest processes")
    parser.add_argument("--deadline", type=float, default=600, help="seconds, at most")
    parser.add_argument("--metered", type=int, default=4, help="tenants metered and compared")
    args = parser.parse_args(argv)
    figures = soak(args.tenants, args.files, args.rows, args.workers, args.deadline, args.metered)
    for name, value in asdict(figures).items():
        print(f"{name:32} {value}")
    ok = (
        figures.failed_invocations == 0
        and figures.rows_lost == 0
        and figures.rows_counted_twice == 0
        and figures.summaries_differing_from_engine == 0
        and not figures.errors
    )
    print("soak:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

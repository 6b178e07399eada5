"""Scale-out figures on the stack of template.yaml (embedded moto, the real handlers):
how fast the dispatch queues a tick's requests, what one tenant's daily run costs (AWS
calls, seconds), and from these the tenants a tick meters per hour. Prints figures;
asserts nothing.

    python bench/scale.py [--tenants 20] [--hosts 1000] [--dispatch 2000]

moto answers a DynamoDB query by scanning and sorting the whole table, so its seconds grow
with the number of tenants stored; the AWS calls a run makes are counted as well, to
estimate a deployed run (a call to DynamoDB, S3 or SNS takes a few milliseconds there).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import botocore.client
from moto import mock_aws

from qlumeter.config import parse_subscription
from qlumeter.pipeline.dynamo import DynamoStore
from qlumeter_cli.stack import REGION, Stack

ROOT = Path(__file__).resolve().parents[1]
START = date(2026, 1, 1)
ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def subscription(tenant: str) -> dict[str, Any]:
    return {
        "subscription_id": tenant,
        "start_date": START.isoformat(),
        "sources": {"cloud_agent": {"mode": "delta"}},
        "products": {"VMDR": {"ratio": "1.5"}, "CSAM": {"ratio": "1"}, "EDR": {"ratio": "2.85"}},
    }


def agents_csv(hosts: int, first: int, changed: int) -> bytes:
    lines = ["asset_type,agent_id,fqdn,modules,status,vuln_count,open_port_count"]
    for i in range(first, first + (changed or hosts)):
        status = "inactive" if changed and i % 3 == 0 else "active"
        lines.append(f"host,ag-{i},h{i}.corp.example,vmdr;edr,{status},{i % 4},1")
    return ("\n".join(lines) + "\n").encode()


class Calls:
    """AWS calls by service and operation while counting."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.on = False
        real = botocore.client.BaseClient._make_api_call

        def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if self.on:
                self.counts[f"{client.meta.service_model.service_name}:{operation}"] += 1
            return real(client, operation, params)

        botocore.client.BaseClient._make_api_call = counted  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=20, help="tenants metered")
    parser.add_argument("--hosts", type=int, default=1000, help="hosts per tenant")
    parser.add_argument("--dispatch", type=int, default=2000, help="tenants dispatched")
    args = parser.parse_args()
    os.environ.update(ENV)
    calls = Calls()
    with mock_aws():
        stack = Stack(ROOT / "template.yaml", parameters={"LogLevel": "ERROR"})
        store = DynamoStore()
        tenants = [f"b{n:04d}" for n in range(args.tenants)]
        for tenant in tenants:
            assert stack.put_subscription(subscription(tenant))["ok"]
            for n, changed in ((0, 0), (1, max(1, args.hosts // 50))):
                folder = f"inventory/tenant={tenant}/source=cloud_agent/date={START + timedelta(n)}"
                stack.upload_file(f"{folder}/a.csv", agents_csv(args.hosts, 0, changed))
        list(stack.drain())
        stack.meter(scheduled_time=f"{START + timedelta(days=1)}T02:30:00Z")  # the first day
        stack.dispatch(scheduled_time=f"{START + timedelta(days=2)}T02:30:00Z")
        handler = stack.meter_app.handler

        def counted(event: Any, context: Any) -> Any:  # the meter function's own calls
            calls.on = True
            try:
                return handler(event, context)
            finally:
                calls.on = False

        stack.meter_app.handler = counted
        started = time.perf_counter()
        results = stack.work()
        seconds = (time.perf_counter() - started) / len(results)
        per_run = {k: v / len(results) for k, v in sorted(calls.counts.items())}
        print(
            f"daily run, {args.hosts:,}-host tenants, 2% changing: {seconds:.3f} s per tenant "
            f"on moto ({len(results)} tenants), {sum(per_run.values()):.0f} AWS calls per run:"
        )
        for name, count in per_run.items():
            print(f"  {name}: {count:.1f}")
        for tenant in (f"d{n:05d}" for n in range(args.dispatch)):
            store.put_subscription(parse_subscription(subscription(tenant)))
        started = time.perf_counter()
        answer = stack.dispatch(scheduled_time=f"{START + timedelta(days=3)}T02:30:00Z")
        dispatched = time.perf_counter() - started
        print(
            f"dispatch: {answer['tenants']:,} requests queued in {dispatched:.1f} s on moto "
            f"({answer['tenants'] / dispatched:,.0f} tenants/s)"
        )
    for concurrency in (5, 50, 500):
        print(
            f"tenants metered per hour at MeterConcurrency {concurrency}, at the moto pace: "
            f"{concurrency * 3600 / seconds:,.0f}"
        )


if __name__ == "__main__":
    main()

"""What one ingest invocation can take on within Lambda's 15 minutes: the figures behind
``IngestLimits`` (docs/reliability.md, "AWS limits"). Prints figures; asserts nothing.

In a fresh process each: the ingest service (the engine's reader, the row packing and the
rejects as deployed) over a cloud-agent CSV of ``--rows`` rows, with a store that packs
and batches the rows as ``DynamoStore`` does but sends nothing (its BatchWriteItem calls
are counted); and the plan of a split (hashing, lines, quotes) over the same bytes. DynamoDB
is not here: its share is the batch calls times a latency per call, given as an assumption
(``--write-ms``). CPU figures are this machine's; Lambda at 2048 MB has about one such core.

    python bench/ingest_limits.py [--rows 500000] [--write-ms 25]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from generate import AGENT_COLUMNS, agent_row, write

INGEST = """
import sys, time, resource
from types import SimpleNamespace
from qlumeter.pipeline.dynamo import BATCH, pack_rows
from qlumeter.pipeline.ingest import Ingest, ObjectVersion
from qlumeter.pipeline.ports import TenantState

class Store:
    calls = 0
    def get_subscription(self, tenant): return SimpleNamespace(strict=False)
    def write_rows(self, ref, version, rows):
        items = sum(1 for _ in pack_rows(rows))
        Store.calls += -(-items // BATCH)
        return items
    def put_manifest(self, manifest): pass
    def get_state(self, tenant): return TenantState(tenant)

class Objects:
    def open(self, bucket, key, version): return open(sys.argv[1], "rb")
    def put(self, bucket, key, body): pass
    def copy(self, *args): pass

class Quiet:
    def publish(self, *args): pass
    def request(self, *args): pass

ingest = Ingest(Store(), Objects(), Quiet(), Quiet())
key = "inventory/tenant=bench/source=cloud_agent/date=2026-01-01/agents.csv"
wall, cpu = time.perf_counter(), time.process_time()
result = ingest.ingest(ObjectVersion("bucket", key, "v1", "01"))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(result.rows, result.entities, Store.calls, wall, cpu, peak)
"""
PLAN = """
import sys, time
from qlumeter.pipeline.ranges import plan_ranges
wall, cpu = time.perf_counter(), time.process_time()
with open(sys.argv[1], "rb") as body:
    plan = plan_ranges(body, "csv", 128 << 20, 3_000_000)
print(len(plan.ranges), time.perf_counter() - wall, time.process_time() - cpu)
"""


def child(program: str, *argv: str) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", program, *argv], capture_output=True, text=True, check=True
    )
    return [float(x) for x in done.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--write-ms", type=float, default=25.0, help="per BatchWriteItem call")
    args = parser.parse_args()
    rnd = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "agents.csv"
        rows = [agent_row(i, date(2026, 1, 1), rnd) for i in range(args.rows)]
        write(path, AGENT_COLUMNS, rows)
        del rows
        size = path.stat().st_size
        read, entities, calls, wall, cpu, peak = child(INGEST, str(path))
        _, plan_wall, plan_cpu = child(PLAN, str(path))
    per_row = cpu / read
    write_per_row = calls * args.write_ms / 1000 / read
    in_15 = int(900 / (per_row + write_per_row))
    print(f"file: {int(read):,} rows, {size / 2**20:.1f} MiB ({size / read:.0f} bytes a row)")
    print(f"ingest CPU: {cpu:.1f} s ({wall:.1f} s wall): {read / cpu:,.0f} rows/s")
    print(f"  peak RSS: {peak:.0f} MB")
    print(f"  entities counted: {int(entities):,}")
    print(f"BatchWriteItem calls: {int(calls):,} ({read / calls:.0f} rows a call)")
    print(f"  at {args.write_ms:g} ms a call: {write_per_row * 1e6:.1f} us a row")
    print(f"rows in 900 s (CPU + writes): {in_15:,}")
    print(f"plan of a split: {size / plan_cpu / 2**20:,.0f} MiB/s CPU ({plan_wall:.2f} s wall)")


if __name__ == "__main__":
    main()

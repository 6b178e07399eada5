"""Does a daily run cost more as history grows? The sample tenant over many days on the
embedded stack (the real handlers, moto): every day's files uploaded and ingested, then one
scheduled run a day, each timed. Prints the seconds of chosen days; asserts nothing.

    python bench/history.py [--days 160]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from moto import mock_aws

from qlumeter.config import load_subscription
from qlumeter_cli.sample import write_sample
from qlumeter_cli.stack import REGION, Stack

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=160)
    args = parser.parse_args()
    os.environ.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        POWERTOOLS_METRICS_DISABLED="true",
    )
    with tempfile.TemporaryDirectory() as folder, mock_aws():
        root = Path(folder)
        path, rows = write_sample(root, args.days)
        sub = load_subscription(path)
        stack = Stack(ROOT / "template.yaml", parameters={"LogLevel": "ERROR"})
        stack.put_subscription(sub.to_json_dict())
        keys = stack.upload(root)
        list(stack.drain())
        print(f"{rows:,} rows in {len(keys)} files over {args.days} days ingested")
        seconds = []
        for n in range(args.days):
            day = sub.start_date + timedelta(days=n)
            started = time.perf_counter()
            stack.meter(subscription_id=sub.subscription_id, as_of=day.isoformat())
            seconds.append(time.perf_counter() - started)
        for n in sorted({1, 10, 30, 60, 90, 120, args.days} & set(range(1, args.days + 1))):
            print(f"day {n}: {seconds[n - 1]:.2f} s")
        tail = seconds[-10:]
        print(
            f"last ten days: {min(tail):.2f} - {max(tail):.2f} s; days 10-19: "
            f"{min(seconds[9:19]):.2f} - {max(seconds[9:19]):.2f} s"
        )


if __name__ == "__main__":
    main()

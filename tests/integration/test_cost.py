"""DynamoDB write units per inventory row, counted from the request payloads.

moto reports a fixed ConsumedCapacity, so every DynamoDB write request is intercepted
and its items sized as DynamoDB does (attribute names plus values), one unit per started
KB per item.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.client
import pytest

from tests.support import SUBSCRIPTION, Pipeline, write_file


def value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind in ("S", "B"):
        return len(inner.encode() if isinstance(inner, str) else inner)
    if kind == "N":
        return math.ceil(len(inner.lstrip("-").replace(".", "")) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in inner)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())  # M


def item_units(item: dict[str, Any]) -> int:
    size = sum(len(name.encode()) + value_size(value) for name, value in item.items())
    return max(1, math.ceil(size / 1024))


class WriteUnits:
    def __init__(self) -> None:
        self.units = 0

    def count(self, operation: str, params: dict[str, Any]) -> None:
        if operation == "PutItem":
            self.units += item_units(params["Item"])
        elif operation in ("UpdateItem", "DeleteItem"):
            values = params.get("ExpressionAttributeValues", {})
            self.units += item_units({**params["Key"], **values})
        elif operation == "BatchWriteItem":
            for requests in params["RequestItems"].values():
                for request in requests:
                    put = request.get("PutRequest")
                    self.units += item_units(
                        put["Item"] if put else request["DeleteRequest"]["Key"]
                    )


@pytest.fixture
def write_units(monkeypatch: pytest.MonkeyPatch) -> Iterator[WriteUnits]:
    counter = WriteUnits()
    real = botocore.client.BaseClient._make_api_call

    def counting(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            counter.count(operation, params)
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    yield counter


def test_write_units_per_row_first_drop_and_replay(
    pipeline: Pipeline, tmp_path: Path, write_units: WriteUnits, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.put_subscription(SUBSCRIPTION)
    rows = [
        {
            "asset_type": "host",
            "agent_id": f"agent-{i:06d}",
            "fqdn": f"host{i:06d}.corp.example",
            "ip": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            "modules": "vmdr;pc;edr",
            "vuln_count": i % 17,
            "open_port_count": i % 5,
            "observed_at": "2026-01-01T04:00:00Z",
        }
        for i in range(3000)
    ]
    write_file(tmp_path, "cloud_agent", "2026-01-01", rows[:2000], name="agents")
    write_file(tmp_path, "scanner", "2026-01-01", rows[2000:], name="scan", fmt="jsonl")
    pipeline.upload(tmp_path)
    messages = pipeline.receive(pipeline.queue_url)
    write_units.units = 0
    assert pipeline.deliver(messages)["batchItemFailures"] == []
    first = write_units.units / len(rows)
    write_units.units = 0
    assert pipeline.deliver(messages)["batchItemFailures"] == []
    replay = write_units.units / len(rows)
    with capsys.disabled():
        print(f"\nwrite units per row: first drop {first:.3f}, replayed drop {replay:.4f}")
    assert first <= 1.0
    assert replay <= 0.01

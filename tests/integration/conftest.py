"""The stack of template.yaml on moto, driven through the real handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from qlumeter_cli.stack import ACCOUNT, REGION, Stack

TEMPLATE = Path(__file__).parents[2] / "template.yaml"
INVENTORY_BUCKET = f"qlumeter-local-inventory-{ACCOUNT}-{REGION}"
ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


class RecordingTrigger:
    """Stands in for the asynchronous invoke of the meter function."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def request(self, tenant: str, as_of: Any) -> None:
        self.requests.append((tenant, str(as_of)))


class Pipeline(Stack):
    """The stack with the late-data trigger recorded instead of invoking a function."""

    def __init__(self, setenv: Callable[[str, str], None]) -> None:
        super().__init__(TEMPLATE, setenv, parameters={"LogLevel": "WARNING"})
        self.trigger = RecordingTrigger()
        self.ingest.service.trigger = self.trigger
        assert self.inventory_bucket == INVENTORY_BUCKET


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield Pipeline(monkeypatch.setenv)

"""Fixtures of every suite: the stack of template.yaml on moto (``tests.support.Pipeline``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import ENV, Pipeline


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    from moto import mock_aws  # the suites that drive the stack only

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield Pipeline(monkeypatch.setenv)

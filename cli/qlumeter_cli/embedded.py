"""The stack on an embedded moto account, for ``qlumeter run``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from moto import mock_aws

from qlumeter.config import Subscription

from .run import Progress, default_template, run_stack
from .stack import REGION, Stack

_ENV = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


@contextmanager
def _environment() -> Iterator[dict[str, str]]:
    """Process environment for the embedded stack, restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(_ENV)
    try:
        yield _ENV
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_embedded(
    sub: Subscription, root: Path, as_of: date, template: Path | None, progress: Progress
) -> dict[str, Any]:
    """Create the template's stack on moto, run the pipeline over the folder, tear down."""
    template = template or default_template()
    if not template.is_file():
        raise FileNotFoundError(f"template not found: {template} (use --template)")
    with _environment(), mock_aws(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No application metrics")
        stack = Stack(template, parameters={"LogLevel": "ERROR"})
        return run_stack(stack, sub, root, as_of, progress)

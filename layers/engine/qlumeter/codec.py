"""Observations to and from compact JSON text, for storage between ingest and metering."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date, datetime
from typing import Any

from .observation import Observation, classify

_STORED = [
    f.name
    for f in fields(Observation)
    if f.name
    not in ("source", "day", "path", "line", "kind", "key", "seq", "slot", "removed", "active")
]
_DEFAULTS = {f.name: f.default for f in fields(Observation) if f.name in _STORED}
_TIMES = ("observed_at", "last_fim_event_at")


def encode(obs: Observation) -> str:
    """The row's own fields that differ from their defaults, as compact JSON."""
    out: dict[str, Any] = {}
    for name in _STORED:
        value = getattr(obs, name)
        if value == _DEFAULTS[name]:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, frozenset | tuple):
            value = sorted(value) if isinstance(value, frozenset) else list(value)
        out[name] = value
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def decode(text: str, source: str, day: date, path: str, line: int) -> Observation:
    """An observation back from ``encode`` and the file it came from."""
    data: dict[str, Any] = json.loads(text)
    for name in _TIMES:
        if name in data:
            data[name] = datetime.fromisoformat(data[name])
    if "modules" in data:
        data["modules"] = frozenset(data["modules"])
    if "ips" in data:
        data["ips"] = tuple(data["ips"])
    obs = Observation(source=source, day=day, path=path, line=line, **data)
    classify(obs)
    return obs

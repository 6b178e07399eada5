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
_TEXT = [f.name for f in fields(Observation) if f.name in _STORED and str(f.type).startswith("str")]
#: A stored row's largest encoded size: a DynamoDB item holds 400 KB, keys included.
MAX_ENCODED_BYTES = 350_000
#: Characters of text a row may hold before its encoded size is measured (JSON writes a
#: character in at most 12 bytes).
_SURELY_FITS = MAX_ENCODED_BYTES // 12


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


def oversized(obs: Observation) -> int:
    """The encoded size of a row too large to store (over ``MAX_ENCODED_BYTES``), or 0."""
    chars = sum(len(value) for name in _TEXT if (value := getattr(obs, name)))
    chars += sum(map(len, obs.ips)) + sum(map(len, obs.modules))
    if chars <= _SURELY_FITS:
        return 0
    size = len(encode(obs).encode())
    return size if size > MAX_ENCODED_BYTES else 0


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

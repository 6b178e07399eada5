"""Inventory object paths (spec section 3).

``[<prefix>/]tenant=<id>/source=<source>/date=<YYYY-MM-DD>/<name>.<csv|jsonl|json>[.gz]``
on a local disk; in the inventory bucket exactly ``inventory/tenant=<id>/...`` (no folder
before ``tenant=``: ``parse_bucket_key``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from datetime import date

from .vocabulary import SOURCES

#: A subscription id, also the ``tenant=`` path segment (use ``fullmatch``).
TENANT_ID_PATTERN: re.Pattern[str] = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The subscription id of the messages about an object whose key names no valid tenant:
#: it fits the pattern (the summary schema holds) and is reserved, never a subscription.
UNATTRIBUTED = "_unattributed"
MAX_PATH_CHARS = 1024
#: The key from ``tenant=`` on, in UTF-8: it is part of DynamoDB keys (at most 1,024 bytes)
#: with a version and a line number.
MAX_KEY_BYTES = 900
FORMATS: tuple[str, ...] = ("csv", "jsonl", "json")

#: A day as every input writes it (paths, subscriptions, the command line): YYYY-MM-DD.
DAY_PATTERN: re.Pattern[str] = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ENCODED_SLASH = re.compile(r"%(?:2f|5c)", re.IGNORECASE)


class PathError(ValueError):
    """A path that is not an inventory file key; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FileRef:
    """A parsed inventory file key; ``key`` is the path from ``tenant=`` on."""

    key: str
    tenant: str
    source: str
    day: date
    name: str  # the file name without its format and ``.gz`` extensions
    fmt: str  # csv, jsonl or json
    gzip: bool


def valid_tenant(text: str) -> bool:
    """Whether ``text`` may be a subscription id: the pattern, and not the reserved one."""
    return text != UNATTRIBUTED and TENANT_ID_PATTERN.fullmatch(text) is not None


def tenant_problem(text: str) -> str | None:
    """Why ``text`` cannot be a subscription id (None: it can)."""
    if text == UNATTRIBUTED:
        return f"'{UNATTRIBUTED}' is reserved (messages about objects of no tenant)"
    if not TENANT_ID_PATTERN.fullmatch(text):
        return f"expected {TENANT_ID_PATTERN.pattern}"
    return None


def _segment_value(segment: str, label: str) -> str:
    prefix = f"{label}="
    if not segment.startswith(prefix):
        raise PathError(f"missing {prefix} segment (found '{segment}')")
    return segment[len(prefix) :]


def _split_name(file_name: str) -> tuple[str, str, bool]:
    gz = file_name.endswith(".gz")
    base = file_name[:-3] if gz else file_name
    stem, dot, ext = base.rpartition(".")
    if not dot or ext not in FORMATS:
        raise PathError(
            f"unknown extension in '{file_name}' (expected .csv, .jsonl or .json, "
            "optionally followed by .gz)"
        )
    if not stem:
        raise PathError(f"empty file name in '{file_name}'")
    return stem, ext, gz


def parse_key(path: str) -> FileRef:
    """Parse an inventory object path (S3 key or local path); raise PathError if invalid."""
    if len(path) > MAX_PATH_CHARS:
        raise PathError(f"path longer than {MAX_PATH_CHARS} characters")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise PathError("path is not valid UTF-8") from None
    control = _CONTROL.search(path)
    if control:
        raise PathError(f"control character U+{ord(control.group()):04X} in path")
    if "\\" in path:
        raise PathError("backslash in path")
    if _ENCODED_SLASH.search(path):
        raise PathError("percent-encoded slash or backslash in path")
    # A leading "/" (an absolute local path) is the only empty segment allowed.
    segments = path.removeprefix("/").split("/")
    for segment in segments:
        if not segment:
            raise PathError("empty path segment")
        if segment in (".", ".."):
            raise PathError(f"'{segment}' segment in path")
    start = next((i for i, s in enumerate(segments) if s.startswith("tenant=")), None)
    if start is None:
        raise PathError("missing tenant= segment")
    parts = segments[start:]
    if len(parts) < 4:
        raise PathError(
            "missing segments: expected tenant=<id>/source=<source>/date=<YYYY-MM-DD>/<file>"
        )
    tenant = _segment_value(parts[0], "tenant")
    source = _segment_value(parts[1], "source")
    day_text = _segment_value(parts[2], "date")
    if len(parts) > 4:
        raise PathError(
            f"extra directories between date= and the file name: {'/'.join(parts[3:-1])}"
        )
    problem = tenant_problem(tenant)
    if problem:
        raise PathError(f"invalid tenant id '{tenant}' ({problem})")
    if source not in SOURCES:
        raise PathError(f"unknown source '{source}'")
    if not DAY_PATTERN.fullmatch(day_text):
        raise PathError(f"invalid date '{day_text}' (expected YYYY-MM-DD)")
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise PathError(f"invalid date '{day_text}'") from None
    name, fmt, gz = _split_name(parts[3])
    key = "/".join(parts)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise PathError(f"key from tenant= on longer than {MAX_KEY_BYTES} bytes")
    return FileRef(
        key=key,
        tenant=sys.intern(tenant),
        source=sys.intern(source),
        day=day,
        name=name,
        fmt=fmt,
        gzip=gz,
    )


def parse_bucket_key(key: str, prefix: str) -> FileRef:
    """An object key of the inventory bucket: exactly
    ``<prefix>tenant=<id>/source=<source>/date=<YYYY-MM-DD>/<file>``; raise PathError."""
    if not key.startswith(prefix):
        raise PathError(f"not under {prefix}")
    if not key.startswith(f"{prefix}tenant="):
        raise PathError(
            f"expected {prefix}tenant=<id>/source=<source>/date=<YYYY-MM-DD>/<file>"
            " (no folder before tenant=)"
        )
    return parse_key(key[len(prefix) :])


def bucket_key_tenant(key: str, prefix: str) -> str:
    """Whom a message about a bucket key goes to: the tenant its first segment under
    ``prefix`` names, when that is ``tenant=<a valid id>``; otherwise ``UNATTRIBUTED``."""
    segment = key[len(prefix) :].split("/", 1)[0] if key.startswith(prefix) else ""
    tenant = segment.removeprefix("tenant=")
    return tenant if segment.startswith("tenant=") and valid_tenant(tenant) else UNATTRIBUTED

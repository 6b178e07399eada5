"""Inventory object paths: parsing and every refusal (spec section 3)."""

from __future__ import annotations

from datetime import date

import pytest

from qlumeter.paths import MAX_PATH_CHARS, TENANT_ID_PATTERN, FileRef, PathError, parse_key

KEY = "tenant=acme/source=scanner/date=2026-01-05"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            f"inventory/{KEY}/a.csv.gz",
            FileRef(f"{KEY}/a.csv.gz", "acme", "scanner", date(2026, 1, 5), "a", "csv", True),
        ),
        (
            f"{KEY}/hosts.jsonl",
            FileRef(
                f"{KEY}/hosts.jsonl", "acme", "scanner", date(2026, 1, 5), "hosts", "jsonl", False
            ),
        ),
        (
            f"/var/data/inventory/{KEY}/part.0001.json",
            FileRef(
                f"{KEY}/part.0001.json",
                "acme",
                "scanner",
                date(2026, 1, 5),
                "part.0001",
                "json",
                False,
            ),
        ),
        (
            "x/tenant=Tenant_1-b/source=cloud_agent/date=2024-02-29/a.json.gz",
            FileRef(
                "tenant=Tenant_1-b/source=cloud_agent/date=2024-02-29/a.json.gz",
                "Tenant_1-b",
                "cloud_agent",
                date(2024, 2, 29),
                "a",
                "json",
                True,
            ),
        ),
    ],
)
def test_parse_valid_keys(path: str, expected: FileRef) -> None:
    assert parse_key(path) == expected


def test_tenant_and_source_strings_are_interned() -> None:
    first = parse_key(f"{KEY}/a.csv")
    second = parse_key(
        "".join(["tenant=", "acme", "/source=", "scanner", "/date=2026-01-05/b.csv"])
    )
    assert first.tenant is second.tenant
    assert first.source is second.source


def test_tenant_id_pattern() -> None:
    assert TENANT_ID_PATTERN.fullmatch("a" * 64)
    assert not TENANT_ID_PATTERN.fullmatch("a" * 65)
    assert not TENANT_ID_PATTERN.fullmatch("")
    assert not TENANT_ID_PATTERN.fullmatch("ac.me")


def test_path_error_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError) as info:
        parse_key("nothing")
    assert isinstance(info.value, PathError)
    assert info.value.reason == "missing tenant= segment"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        # tenant id
        ("tenant=/source=scanner/date=2026-01-05/a.csv", "invalid tenant id ''"),
        ("tenant=ac.me/source=scanner/date=2026-01-05/a.csv", "invalid tenant id 'ac.me'"),
        ("tenant=ac me/source=scanner/date=2026-01-05/a.csv", "invalid tenant id 'ac me'"),
        (f"tenant={'a' * 65}/source=scanner/date=2026-01-05/a.csv", "invalid tenant id"),
        # source
        ("tenant=acme/source=printer/date=2026-01-05/a.csv", "unknown source 'printer'"),
        ("tenant=acme/source=Scanner/date=2026-01-05/a.csv", "unknown source 'Scanner'"),
        # date
        ("tenant=acme/source=scanner/date=2026-02-30/a.csv", "invalid date '2026-02-30'"),
        ("tenant=acme/source=scanner/date=2026-1-5/a.csv", "invalid date '2026-1-5'"),
        ("tenant=acme/source=scanner/date=20260105/a.csv", "invalid date '20260105'"),
        ("tenant=acme/source=scanner/date=/a.csv", "invalid date ''"),
        # extension
        (f"{KEY}/a.txt", "unknown extension in 'a.txt'"),
        (f"{KEY}/a.csv.zip", "unknown extension"),
        (f"{KEY}/a.gz", "unknown extension"),
        (f"{KEY}/a", "unknown extension"),
        (f"{KEY}/a.CSV", "unknown extension"),
        (f"{KEY}/.csv", "empty file name"),
        # dot segments
        (f"inventory/../{KEY}/a.csv", "'..' segment in path"),
        (f"./{KEY}/a.csv", "'.' segment in path"),
        (f"{KEY}/../a.csv", "'..' segment in path"),
        # empty segments
        (f"inventory//{KEY}/a.csv", "empty path segment"),
        (f"{KEY}//a.csv", "empty path segment"),
        (f"{KEY}/a.csv/", "empty path segment"),
        # encoded separators, backslashes, control characters
        (f"inventory%2F{KEY}/a.csv", "percent-encoded slash or backslash"),
        (f"{KEY}/x%2fa.csv", "percent-encoded slash or backslash"),
        (f"{KEY}/x%5Ca.csv", "percent-encoded slash or backslash"),
        (f"{KEY}\\a.csv", "backslash in path"),
        (f"{KEY}/a\x00.csv", "control character U+0000"),
        (f"{KEY}/a\n.csv", "control character U+000A"),
        (f"{KEY}/a\x7f.csv", "control character U+007F"),
        # length
        (f"{'p' * MAX_PATH_CHARS}/{KEY}/a.csv", "path longer than 1024 characters"),
        # missing segments
        ("source=scanner/date=2026-01-05/a.csv", "missing tenant= segment"),
        ("tenant=acme/source=scanner/a.csv", "missing segments"),
        ("tenant=acme/date=2026-01-05/x/a.csv", "missing source= segment"),
        ("tenant=acme/source=scanner/day=2026-01-05/a.csv", "missing date= segment"),
        # extra directories
        (f"{KEY}/sub/a.csv", "extra directories between date= and the file name: sub"),
        (f"{KEY}/x/y/a.csv", "extra directories between date= and the file name: x/y"),
    ],
)
def test_refusals(path: str, reason: str) -> None:
    with pytest.raises(PathError) as info:
        parse_key(path)
    assert reason in info.value.reason


def test_longest_accepted_path() -> None:
    suffix = f"/{KEY}/a.csv"
    path = "p" * (MAX_PATH_CHARS - len(suffix)) + suffix
    assert len(path) == MAX_PATH_CHARS
    assert parse_key(path).key == suffix[1:]

"""The row normalizer: every field rule, default and rejection (spec sections 3 and 4)."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qlumeter.observation import Kind, Observation, RowError, host_strong_ids
from qlumeter.paths import parse_key
from qlumeter.rows import (
    FIELD_NAMES,
    FIELDS,
    MAX_FIELD_CHARS,
    RowWarnings,
    csv_columns,
    normalize,
    normalize_cells,
    normalize_rows,
    row_json_schema,
)

REF = parse_key("inventory/tenant=acme/source=scanner/date=2026-01-05/a.csv")
HOST = {"asset_type": "host", "asset_id": "A1"}


def norm(raw: dict[str, Any], ref: Any = REF, **kwargs: Any) -> Observation:
    return normalize(raw, ref, 7, **kwargs)


def host(**fields: Any) -> Observation:
    return norm({**HOST, **fields})


def rejected(raw: dict[str, Any], ref: Any = REF, **kwargs: Any) -> RowError:
    with pytest.raises(RowError) as info:
        normalize(raw, ref, 7, **kwargs)
    return info.value


def host_rejected(**fields: Any) -> RowError:
    return rejected({**HOST, **fields})


def from_json(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return value


# --- the table ---


def test_table_has_every_v1_field() -> None:
    assert {
        "tenant", "source", "observed_at", "asset_type", "asset_id", "agent_id", "agent_type",
        "cloud_provider", "cloud_resource_id", "fqdn", "hostname", "netbios", "ip", "network_id",
        "identity_key", "idp", "url", "http_method", "device_id", "node_id", "instance_id",
        "image_digest", "scan_id", "pipeline_stage", "status", "modules", "vuln_count",
        "open_port_count", "has_findings", "ot_level", "last_fim_event_at",
    } == FIELD_NAMES  # fmt: skip


def test_static_defaults_of_the_table_are_the_observation_defaults() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Observation)}
    with_defaults = [spec for spec in FIELDS if spec.default is not None]
    assert {spec.name for spec in with_defaults} == {
        "agent_type", "network_id", "http_method", "status",
    }  # fmt: skip
    for spec in with_defaults:
        assert defaults[spec.attr or spec.name] == spec.default


# --- defaults ---


def test_defaults() -> None:
    obs = host()
    assert obs.source == "scanner" and obs.day == date(2026, 1, 5)
    assert obs.path == REF.key and obs.line == 7
    assert obs.observed_at == datetime(2026, 1, 5, tzinfo=UTC)
    assert obs.status == "active"
    assert obs.agent_type == "standard"
    assert obs.http_method == "GET"
    assert obs.network_id == "default"
    assert obs.modules == frozenset() and obs.ips == ()
    assert obs.vuln_count is None and obs.open_port_count is None
    assert obs.has_findings is False
    assert obs.ot_level == "basic"
    assert obs.kind is Kind.HOST and obs.key == "asset:A1"


def test_has_findings_and_ot_level_default_from_vuln_count() -> None:
    assert host(vuln_count="0").has_findings is False
    assert host(vuln_count="0").ot_level == "basic"
    assert host(vuln_count="3").has_findings is True
    assert host(vuln_count="3").ot_level == "vulnerable"


def test_explicit_has_findings_and_ot_level_win() -> None:
    obs = host(vuln_count="3", has_findings="false", ot_level="Enriched")
    assert obs.has_findings is False and obs.ot_level == "enriched"
    assert host(has_findings="1").has_findings is True


def test_path_values_are_shared_not_copied() -> None:
    obs = host()
    assert obs.source is REF.source and obs.path is REF.key


# --- absent values ---


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_empty_blank_and_null_are_absent(empty: str | None) -> None:
    obs = norm({"asset_type": "host", "agent_id": "G1", "asset_id": empty, "status": empty})
    assert obs.asset_id is None and obs.status == "active" and obs.key == "agent:G1"


def test_unknown_keys_are_ignored() -> None:
    assert host(colour="blue", extra=[1, 2]).asset_id == "A1"


# --- strings ---


def test_strings_are_stripped() -> None:
    obs = norm({"asset_type": " host ", "asset_id": "  A1\t", "cloud_resource_id": " i-1 "})
    assert obs.asset_id == "A1" and obs.cloud_resource_id == "i-1"


def test_json_numbers_in_string_fields_are_their_text() -> None:
    obs = norm(from_json('{"asset_type": "host", "asset_id": 12345, "agent_id": 1.50}'))
    assert obs.asset_id == "12345" and obs.agent_id == "1.50"


@pytest.mark.parametrize(
    ("value", "kind"), [(True, "a boolean"), ([1], "an array"), ({"a": 1}, "an object")]
)
def test_other_json_values_in_string_fields_are_rejected(value: object, kind: str) -> None:
    error = host_rejected(agent_id=value)
    assert (error.field, error.reason) == ("agent_id", f"expected a string, got {kind}")


@pytest.mark.parametrize("name", ["fqdn", "hostname", "netbios"])
def test_host_names_are_lowercased_without_trailing_dot(name: str) -> None:
    assert getattr(host(**{name: "Web01.Corp.EXAMPLE."}), name) == "web01.corp.example"
    assert getattr(host(**{name: "web01"}), name) == "web01"


def test_a_lone_dot_is_not_a_host_name() -> None:
    error = host_rejected(fqdn=".")
    assert (error.field, error.reason) == ("fqdn", "empty name")


def test_identity_key_and_idp_are_lowercased() -> None:
    obs = normalize(
        {"asset_type": "identity", "identity_key": "Jane.Doe@Acme.COM", "idp": "Okta"},
        parse_key("tenant=acme/source=idp/date=2026-01-05/u.jsonl"),
        1,
    )
    assert obs.identity_key == "jane.doe@acme.com" and obs.idp == "okta"
    assert obs.key == "identity:jane.doe@acme.com"


def test_http_method_is_uppercased() -> None:
    ref = parse_key("tenant=acme/source=tas/date=2026-01-05/a.csv")
    obs = normalize(
        {"asset_type": "api_endpoint", "url": "https://a.example/v1", "http_method": "post"}, ref, 1
    )
    assert obs.http_method == "POST" and obs.key == "api:POST https://a.example/v1"
    assert (
        normalize({"asset_type": "api_endpoint", "url": "https://a.example/v1"}, ref, 1).http_method
        == "GET"
    )


def test_network_id_is_kept_as_written() -> None:
    assert host(network_id="DMZ-1").network_id == "DMZ-1"


# --- url ---

WEB = parse_key("tenant=acme/source=was/date=2026-01-05/a.csv")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://App.Example.COM:443/", "https://app.example.com"),
        ("http://App.Example.com:80/Path/To/?Q=A#frag", "http://app.example.com/Path/To?Q=A"),
        ("https://app.example.com:8443/a//", "https://app.example.com:8443/a"),
        ("http://app.example.com:443/x", "http://app.example.com:443/x"),
        ("https://user@App.example.com/x", "https://user@app.example.com/x"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("https://app.example.com?q=1", "https://app.example.com?q=1"),
    ],
)
def test_url_normalization(url: str, expected: str) -> None:
    obs = normalize({"asset_type": "web_app", "url": url}, WEB, 1)
    assert obs.url == expected and obs.key == f"web:{expected}"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("app.example.com/path", "url needs a scheme and a host"),
        ("https:///path", "url needs a scheme and a host"),
        ("/relative", "url needs a scheme and a host"),
        ("https://app.example.com:99999/", "invalid url"),
        ("https://[::1/", "invalid url"),
    ],
)
def test_url_rejections(url: str, reason: str) -> None:
    error = rejected({"asset_type": "web_app", "url": url}, WEB)
    assert error.field == "url" and reason in error.reason


# --- enums ---


def test_enums_are_case_insensitive() -> None:
    obs = norm({"asset_type": "HOST", "asset_id": "A1", "status": "Decommissioned",
                "agent_type": "EDR_Sensor", "cloud_provider": "AWS"})  # fmt: skip
    assert (obs.asset_type, obs.status, obs.agent_type, obs.cloud_provider) == (
        "host", "decommissioned", "edr_sensor", "aws",
    )  # fmt: skip


@pytest.mark.parametrize(
    "name", ["status", "agent_type", "cloud_provider", "pipeline_stage", "ot_level", "asset_type"]
)
def test_unknown_enum_values_are_rejected(name: str) -> None:
    error = host_rejected(**{name: "bogus"})
    assert error.field == name and error.reason.startswith(
        "unknown value 'bogus' (expected one of:"
    )


def test_asset_type_is_required() -> None:
    error = rejected({"asset_id": "A1"})
    assert (error.field, error.reason) == ("asset_type", "required")


def test_enum_values_are_the_canonical_objects() -> None:
    assert host(status="ACTIVE").status is sys.intern("active")


# --- ip ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1",)),
        (" 10.0.0.1 ; 10.0.0.2;", ("10.0.0.1", "10.0.0.2")),
        ("2001:DB8:0:0::1", ("2001:db8::1",)),
        ("10.0.0.2;10.0.0.1;10.0.0.2", ("10.0.0.2", "10.0.0.1")),
        (["10.0.0.1", "2001:db8::0:1"], ("10.0.0.1", "2001:db8::1")),
        (["10.0.0.1;10.0.0.2"], ("10.0.0.1", "10.0.0.2")),
        ("0.0.0.0", ("0.0.0.0",)),
    ],
)
def test_ips_are_parsed_and_normalized(value: object, expected: tuple[str, ...]) -> None:
    assert norm({"asset_type": "host", "ip": value}).ips == expected


@pytest.mark.parametrize("value", ["10.0.0.256", "010.0.0.1", "1.2.3", "host", "10.0.0.1;x", ["1"]])
def test_invalid_ips_are_rejected(value: object) -> None:
    error = host_rejected(ip=value)
    assert error.field == "ip" and error.reason.startswith("invalid IP address")


def test_ip_array_of_non_strings_is_rejected() -> None:
    error = host_rejected(ip=[10])
    assert (error.field, error.reason) == ("ip", "expected an array of strings, got a number in it")


def test_ip_only_host_is_keyed_by_nothing_yet() -> None:
    obs = norm({"asset_type": "host", "ip": "10.0.0.1"})
    assert obs.key is None and obs.ips == ("10.0.0.1",)


def test_ip_address_row_has_exactly_one_ip() -> None:
    ref = parse_key("tenant=acme/source=pci_scanner/date=2026-01-05/a.csv")
    assert normalize({"asset_type": "ip_address", "ip": "10.0.0.1"}, ref, 1).key == "ip:10.0.0.1"
    error = rejected({"asset_type": "ip_address", "ip": "10.0.0.1;10.0.0.2"}, ref)
    assert error.field == "ip"


# --- modules ---


def test_modules_are_a_lowercased_frozenset_of_known_names() -> None:
    warnings = RowWarnings()
    obs = norm({**HOST, "modules": "VMDR; pc;;Foo"}, warnings=warnings)
    assert obs.modules == frozenset({"vmdr", "pc"})
    assert warnings.unknown_modules == {"foo"}
    assert warnings.messages() == ["unknown modules ignored: foo"]


def test_modules_from_a_json_array() -> None:
    warnings = RowWarnings()
    obs = norm({**HOST, "modules": ["edr", "FIM", "bar"]}, warnings=warnings)
    assert obs.modules == frozenset({"edr", "fim"}) and warnings.unknown_modules == {"bar"}


@pytest.mark.parametrize("empty", [[], [" "], ["", " ; "]])
def test_an_empty_json_array_of_modules_is_absent(empty: list[str]) -> None:
    assert host(modules=empty).modules == frozenset()
    assert host(modules=empty, vuln_count=2).ot_level == "vulnerable"


def test_repeated_module_lists_share_one_frozenset() -> None:
    assert host(modules="vmdr;pc").modules is host(modules="vmdr;pc").modules


def test_no_warning_without_unknown_modules() -> None:
    warnings = RowWarnings()
    norm({**HOST, "modules": "vmdr"}, warnings=warnings)
    assert warnings.messages() == []


# --- booleans ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("False", False), ("0", False),
     (True, True), (False, False), (1, True), (0, False)],
)  # fmt: skip
def test_booleans(value: object, expected: bool) -> None:
    assert host(vuln_count="5", has_findings=value).has_findings is expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [("yes", "got 'yes'"), ("2", "got '2'"), (2, "got a number"), ([True], "got an array")],
)
def test_bad_booleans(value: object, reason: str) -> None:
    error = host_rejected(has_findings=value)
    assert error.field == "has_findings" and reason in error.reason


# --- integers ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), (" 12 ", 12), ("007", 7), (42, 42), (Decimal("5.0"), 5), (Decimal("1E+2"), 100)],
)
def test_counts(value: object, expected: int) -> None:
    obs = host(vuln_count=value, open_port_count=value)
    assert obs.vuln_count == expected and obs.open_port_count == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-5", "must be >= 0, got -5"),
        (-5, "must be >= 0, got -5"),
        ("1.5", "not an integer: '1.5'"),
        (Decimal("1.5"), "not an integer: 1.5"),
        (Decimal("NaN"), "not an integer: NaN"),
        ("abc", "not an integer: 'abc'"),
        ("+5", "not an integer: '+5'"),
        ("1_000", "not an integer: '1_000'"),
        ("\u0665", "not an integer"),  # an Arabic-Indic digit
        ("9" * 30, "too large"),
        (2**63, "too large"),
        (Decimal("1E+30"), "too large"),
        (True, "expected an integer, got a boolean"),
        ([1], "expected an integer, got an array"),
    ],
)
def test_bad_counts(value: object, reason: str) -> None:
    for name in ("vuln_count", "open_port_count"):
        error = host_rejected(**{name: value})
        assert error.field == name and reason in error.reason


# --- datetimes ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-05T10:30:00Z", datetime(2026, 1, 5, 10, 30, tzinfo=UTC)),
        ("2026-01-05T10:30:00", datetime(2026, 1, 5, 10, 30, tzinfo=UTC)),
        ("2026-01-05T10:30:00+02:00", datetime(2026, 1, 5, 8, 30, tzinfo=UTC)),
        ("2026-01-05 10:30:00.250-01:00", datetime(2026, 1, 5, 11, 30, 0, 250000, tzinfo=UTC)),
        ("2026-01-05", datetime(2026, 1, 5, tzinfo=UTC)),
        ("2026-01-04T00:00:00Z", datetime(2026, 1, 4, tzinfo=UTC)),
        ("2026-01-06T23:59:59.999999Z", datetime(2026, 1, 6, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2026-01-07T01:00:00+02:00", datetime(2026, 1, 6, 23, tzinfo=UTC)),
    ],
)
def test_observed_at(value: str, expected: datetime) -> None:
    obs = host(observed_at=value)
    assert obs.observed_at == expected and obs.observed_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "utc_date"),
    [
        ("2026-01-03T23:59:59Z", "2026-01-03"),
        ("2026-01-07", "2026-01-07"),
        ("2026-01-06T23:00:00-02:00", "2026-01-07"),
        ("2025-01-05T00:00:00Z", "2025-01-05"),
    ],
)
def test_observed_at_more_than_a_day_from_the_path_is_rejected(value: str, utc_date: str) -> None:
    error = host_rejected(observed_at=value)
    assert error.field == "observed_at"
    assert error.reason == (
        f"UTC date {utc_date} is more than one day from the file's date 2026-01-05"
    )


@pytest.mark.parametrize("name", ["observed_at", "last_fim_event_at"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "not an ISO 8601 date or datetime: 'yesterday'"),
        ("2026-13-01", "not an ISO 8601 date or datetime"),
        ("0001-01-01T00:00:00+01:00", "not an ISO 8601 date or datetime"),
        (20260105, "expected an ISO 8601 string, got a number"),
    ],
)
def test_bad_datetimes(name: str, value: object, reason: str) -> None:
    error = host_rejected(**{name: value})
    assert error.field == name and reason in error.reason


def test_last_fim_event_at_has_no_day_window() -> None:
    obs = host(last_fim_event_at="2025-06-01T12:00:00+01:00")
    assert obs.last_fim_event_at == datetime(2025, 6, 1, 11, tzinfo=UTC)


def test_repeated_datetime_strings_share_one_object() -> None:
    assert (
        host(observed_at="2026-01-05T01:02:03Z").observed_at
        is host(observed_at="2026-01-05T01:02:03Z").observed_at
    )


# --- tenant and source ---


def test_tenant_and_source_must_match_the_path() -> None:
    assert host(tenant="acme", source="SCANNER").source == "scanner"
    error = host_rejected(tenant="other")
    assert (error.field, error.reason) == ("tenant", "'other' is not the path's tenant 'acme'")
    error = host_rejected(source="cloud_agent")
    assert error.field == "source"
    assert error.reason == "'cloud_agent' is not the path's source 'scanner'"


def test_tenant_is_case_sensitive() -> None:
    assert host_rejected(tenant="ACME").field == "tenant"


# --- limits and encoding ---


def test_a_value_longer_than_the_limit_is_rejected_with_its_field() -> None:
    assert host(cloud_resource_id="x" * MAX_FIELD_CHARS).cloud_resource_id
    error = host_rejected(cloud_resource_id="x" * (MAX_FIELD_CHARS + 1))
    assert (error.field, error.reason) == (
        "cloud_resource_id", f"longer than {MAX_FIELD_CHARS} characters",
    )  # fmt: skip
    error = rejected({**HOST, "fqdn": "a" * 11}, max_field_chars=10)
    assert (error.field, error.reason) == ("fqdn", "longer than 10 characters")


def test_a_json_array_counts_as_its_joined_text() -> None:
    error = rejected({**HOST, "modules": ["vmdr", "pc", "edr"]}, max_field_chars=10)
    assert (error.field, error.reason) == ("modules", "longer than 10 characters")
    assert norm({**HOST, "modules": ["vmdr", "pc"]}, max_field_chars=7).modules == {"vmdr", "pc"}


@pytest.mark.parametrize("name", ["asset_id", "status", "ip", "modules"])
def test_surrogate_escapes_are_not_valid_utf8(name: str) -> None:
    bad = b"A\xff1".decode("utf-8", "surrogateescape")
    error = host_rejected(**{name: bad})
    assert (error.field, error.reason) == (name, "not valid UTF-8")
    error = host_rejected(**{name: [bad]}) if name in ("ip", "modules") else error
    assert error.reason == "not valid UTF-8"


def test_lone_surrogates_from_json_escapes_are_rejected() -> None:
    error = rejected(from_json('{"asset_type": "host", "asset_id": "A\\ud800"}'))
    assert (error.field, error.reason) == ("asset_id", "not valid UTF-8")


def test_valid_non_ascii_text_is_kept() -> None:
    assert host(agent_id="agent-é-ü").agent_id == "agent-é-ü"


def test_rejection_messages_are_printable_and_short() -> None:
    error = host_rejected(status="x" * 1000)
    assert len(error.reason) < 300


# --- classification errors surface as row errors ---


def test_host_without_identifier_is_rejected() -> None:
    error = rejected({"asset_type": "host", "fqdn": "localhost"})
    assert error.field == "asset_id" and "host-like row needs" in error.reason


def test_entity_without_its_key_is_rejected() -> None:
    error = rejected({"asset_type": "web_app"}, WEB)
    assert (error.field, error.reason) == ("url", "required for web_app")


# --- the CSV fast path ---


@pytest.mark.parametrize(
    "cells",
    [
        [
            "host",
            "A1",
            "Web.Example.",
            "10.0.0.1;10.0.0.2",
            "vmdr;foo",
            "3",
            "2026-01-05T01:00:00Z",
            "",
        ],
        ["HOST", " A2 ", "", "", "", "", "", "Inactive"],
        ["host", "A3\udcff", "", "", "", "", "", ""],
        ["host", "A4", "", "", "", "-1", "", ""],
        ["host", "", "", "", "", "", "2026-01-05", "  "],
    ],
)
def test_normalize_cells_is_normalize_of_the_row(cells: list[str]) -> None:
    header = [
        "asset_type",
        "asset_id",
        "fqdn",
        "ip",
        "modules",
        "vuln_count",
        "observed_at",
        "status",
    ]
    header_with_unknown = [*header, "colour"]
    columns = csv_columns(header_with_unknown)
    assert [c[0] for c in columns] == header

    def outcome(fn: Any) -> Any:
        warnings = RowWarnings()
        try:
            obs = fn(warnings)
        except RowError as exc:
            return ("error", exc.field, exc.reason)
        fields = {f.name: getattr(obs, f.name) for f in dataclasses.fields(obs)}
        return fields, warnings.unknown_modules

    expected = outcome(
        lambda w: normalize(
            dict(zip(header_with_unknown, [*cells, "red"], strict=True)), REF, 3, warnings=w
        )
    )
    assert (
        outcome(lambda w: normalize_cells(columns, [*cells, "red"], REF, 3, warnings=w)) == expected
    )


def test_normalize_cells_checked_skips_the_cell_checks_only() -> None:
    columns = csv_columns(["asset_type", "asset_id"])
    long_id = "x" * (MAX_FIELD_CHARS + 1)
    with pytest.raises(RowError):
        normalize_cells(columns, ["host", long_id], REF, 2)
    assert normalize_cells(columns, ["host", long_id], REF, 2, checked=True).asset_id == long_id


@settings(max_examples=200, deadline=None)
@given(
    ids=st.fixed_dictionaries(
        {},
        optional={
            "asset_id": st.sampled_from(["A1", " ", "a2"]),
            "agent_id": st.sampled_from(["ag1", ""]),
            "cloud_provider": st.just("aws"),
            "cloud_resource_id": st.sampled_from(["i-1", ""]),
            "fqdn": st.sampled_from(["web.example.com", "localhost.corp", "web", ""]),
            "ip": st.sampled_from(["10.0.0.1", "10.0.0.1;::1", ""]),
        },
    ),
    asset_type=st.sampled_from(["host", "virtual_machine"]),
)
def test_a_host_key_is_its_first_strong_identifier(ids: dict[str, str], asset_type: str) -> None:
    try:
        obs = norm({"asset_type": asset_type, **ids})
    except RowError as exc:
        assert exc.field == "asset_id"
        assert not any(ids.get(name, "").strip() for name in ("asset_id", "agent_id", "ip"))
        return
    assert obs.key == (host_strong_ids(obs) or (None,))[0]


# --- many rows at once: normalize_rows is normalize_cells row by row ---

# Per column: values a valid row may have, then values that fail (or are unusual).
CELLS: dict[str, tuple[list[str], list[str]]] = {
    "asset_type": (["host", "HOST", " host ", "virtual_machine"], ["", "web_app", "nope"]),
    "agent_id": (["", " a1 ", "a2", "é"], ["a\udcff"]),
    "fqdn": (["", "Web.Example.", " h.x ", "localhost.x", "h"], ["."]),
    "ip": (["", "10.0.0.1", "10.0.0.1;10.0.0.2", "::1", " 10.0.0.3 "], ["bad", ";", "10.0.0.300"]),
    "modules": (["", "vmdr", "vmdr;zz", "yy", " ; ", "PC;vmdr"], []),
    "status": (["", "active", "Inactive", " terminated "], ["bogus"]),
    "vuln_count": (["", "0", "3", " 7 "], ["-1", "1.5", "99999999999999999999"]),
    "observed_at": (["", "2026-01-05T01:00:00Z", "2026-01-04", "2026-01-06T23:59:59Z",
                     "2026-01-05 05:00"], ["2026-01-03", "2026-01-07", "bad"]),
    "cloud_provider": (["", "aws", "AWS"], ["x"]),
    "cloud_resource_id": (["", "i-1", " i-2 "], []),
    "has_findings": (["", "true", "0"], ["maybe"]),
    "ot_level": (["", "basic", "Enriched"], ["zzz"]),
    "tenant": (["", "acme"], ["other"]),
    "source": (["", "scanner", "SCANNER"], ["cmdb"]),
    "url": (["", "https://x.example/a/"], ["nourl"]),
    "identity_key": (["", "A@B"], []),
    "colour": (["red", ""], []),
}  # fmt: skip


@st.composite
def csv_table(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    """A header and rows whose cells are mostly valid (so that most rows reach the row checks)."""
    header = draw(st.lists(st.sampled_from(sorted(CELLS)), min_size=1, unique=True))
    if "asset_type" not in header and draw(st.integers(0, 3)):
        header.insert(0, "asset_type")

    def cell(name: str) -> str:
        valid, invalid = CELLS[name]
        if invalid and not draw(st.integers(0, 12)):
            return draw(st.sampled_from(invalid) | st.text(max_size=4))
        return draw(st.sampled_from(valid))

    count = draw(st.integers(1, 12))
    return header, [[cell(name) for name in header] for _ in range(count)]


def _outcome(outcome: Observation | RowError) -> Any:
    if isinstance(outcome, RowError):
        return ("error", outcome.field, outcome.reason)
    return {f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)}


def assert_rows_are_cells(
    header: list[str], rows: list[list[str]], max_chars: int = MAX_FIELD_CHARS
) -> None:
    """normalize_rows gives what normalize_cells gives row by row: outcomes and warnings."""
    columns = csv_columns(header)
    lines = range(2, len(rows) + 2)
    checkable = all(cell.isascii() and len(cell) <= max_chars for row in rows for cell in row)
    for checked in {False, checkable}:
        options: dict[str, Any] = {"max_field_chars": max_chars, "checked": checked}
        expected: list[Any] = []
        one_by_one = RowWarnings()
        for row, line in zip(rows, lines, strict=True):
            try:
                obs = normalize_cells(columns, row, REF, line, warnings=one_by_one, **options)
            except RowError as exc:
                expected.append(_outcome(exc))
            else:
                expected.append(_outcome(obs))
        together = RowWarnings()
        outcomes = normalize_rows(columns, rows, lines, REF, warnings=together, **options)
        assert [_outcome(outcome) for outcome in outcomes] == expected
        assert together.unknown_modules == one_by_one.unknown_modules


@settings(max_examples=300, deadline=None)
@given(table=csv_table(), max_chars=st.sampled_from([MAX_FIELD_CHARS, 3]))
def test_normalize_rows_is_normalize_cells_row_by_row(
    table: tuple[list[str], list[list[str]]], max_chars: int
) -> None:
    assert_rows_are_cells(*table, max_chars)


@pytest.mark.parametrize(
    ("name", "cells"),
    [
        ("fqdn", ["A.example.", "b.example"]),
        ("fqdn", ["A.example.", "."]),
        ("ip", ["10.0.0.1", "10.0.0.2"]),
        ("ip", ["10.0.0.1", "10.0.0.2\udcff"]),
        ("ip", ["10.0.0.1", "10.0.0.1;10.0.0.2", "::1", "10.0.0.300", "10.0.0.1\udcff"]),
        ("observed_at", ["2026-01-05", "2026-01-05"]),
        ("observed_at", ["2026-01-05T02:00:00+02:00", "2026-01-03", "2026-01-05 01:00", ""]),
    ],
)
def test_normalize_rows_of_a_column_without_blanks(name: str, cells: list[str]) -> None:
    rows = [["host", f"a{line}", cell] for line, cell in enumerate(cells)]
    assert_rows_are_cells(["asset_type", "agent_id", name], rows)


# --- JSON Schema ---


def test_row_json_schema_accepts_valid_rows_and_rejects_invalid_enums() -> None:
    schema = row_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert set(schema["properties"]) == FIELD_NAMES
    valid = {
        "asset_type": "Host", "asset_id": 12345, "fqdn": "web.example.com", "ip": ["10.0.0.1"],
        "modules": "vmdr;pc", "vuln_count": 3, "open_port_count": "2", "status": "ACTIVE",
        "has_findings": "true", "observed_at": "2026-01-05T10:00:00Z", "network_id": None,
        "agent_id": "", "unknown_key": [1, 2],
    }  # fmt: skip
    validator.validate(valid)
    norm(valid)  # the engine accepts it too
    for bad in (
        {**valid, "status": "retired"},
        {**valid, "asset_type": "printer"},
        {k: v for k, v in valid.items() if k != "asset_type"},
        {**valid, "vuln_count": -1},
        {**valid, "has_findings": "yes"},
        {**valid, "asset_id": True},
    ):
        assert not validator.is_valid(bad), bad
        with pytest.raises(RowError):
            norm(bad)


def test_row_json_schema_carries_the_table() -> None:
    schema = row_json_schema(max_field_chars=100)
    status = schema["properties"]["status"]
    assert status["default"] == "active" and "decommissioned" in status["description"]
    assert schema["required"] == ["asset_type"]
    asset_id = schema["properties"]["asset_id"]["anyOf"]
    assert {"type": "string", "maxLength": 100} in asset_id

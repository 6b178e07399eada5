"""The subscription model, its loader and its one-line errors (spec sections 2 and 11)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from qlumeter.config import (
    ConfigError,
    Subscription,
    load_subscription,
    parse_subscription,
)
from qlumeter.vocabulary import PRODUCT_CODES

FIXTURES = Path(__file__).parent.parent / "fixtures" / "subscriptions"


def raw(**overrides: Any) -> dict[str, Any]:
    """A minimal valid subscription mapping with ``overrides`` applied."""
    data: dict[str, Any] = {
        "subscription_id": "tenant-1",
        "start_date": "2024-01-01",
        "products": {"CSAM": {"ratio": "1"}},
    }
    data.update(overrides)
    return data


def rejected(data: Any) -> str:
    """The ConfigError message for ``data``, checked to be one line."""
    with pytest.raises(ConfigError) as info:
        parse_subscription(data)
    message = str(info.value)
    assert "\n" not in message
    return message


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- fixtures ------------------------------------------------------------------------


def test_acme_yaml_fixture_loads_exactly() -> None:
    sub = load_subscription(FIXTURES / "acme.yaml")
    assert sub.subscription_id == "acme-corp_001"
    assert (sub.start_date, sub.end_date) == (date(2024, 1, 1), date(2024, 12, 31))
    assert len(sub.products) == 8
    assert sub.products["VMDR"].ratio == Decimal("1.87")
    assert sub.products["CSAM"].ratio.as_tuple() == Decimal("0.1").as_tuple()
    assert sub.products["CIS"].ratio == Decimal("0.02")
    assert sub.product_start("PC") == date(2024, 3, 1)
    assert sub.product_start("VMDR") == date(2024, 1, 1)
    assert sub.mode("scanner") == "delta"
    assert sub.mode("cloud_agent") == "snapshot"
    assert sub.mode("vmware") == "snapshot"
    assert sub.entitlement_qlus == Decimal(25000)
    assert sub.alert_thresholds == (Decimal("0.75"), Decimal("0.9"), Decimal("1.0"))
    assert sub.purge_rules.enabled is True
    assert sub.purge_rules.inactive_days == 45
    assert sub.container.missed_heartbeats == 4
    assert sub.plan_caps() == {}


def test_fedgov_json_fixture_loads_exactly() -> None:
    sub = load_subscription(FIXTURES / "fedgov.json")
    assert sub.fed_high is True
    assert {"WAS", "PM"} <= sub.products.keys()
    assert sub.products["VMDR"].ratio.as_tuple() == Decimal("2.25").as_tuple()
    assert sub.products["PM"].ratio.as_tuple() == Decimal("0.6").as_tuple()
    assert sub.product_start("PM") == date(2024, 11, 1)
    assert sub.entitlement_qlus is not None
    assert str(sub.entitlement_qlus) == "40000.00"
    assert sub.plan_caps() == {"ip_addresses": 10000, "web_apps": 250}
    assert (sub.rounding.utilization, sub.rounding.qlu) == ("exact", "half_up")


@pytest.mark.parametrize("name", ["acme.yaml", "fedgov.json"])
def test_fixtures_round_trip(name: str) -> None:
    sub = load_subscription(FIXTURES / name)
    assert parse_subscription(json.loads(json.dumps(sub.to_json_dict()))) == sub


# --- defaults and helpers ------------------------------------------------------------


def test_defaults() -> None:
    sub = parse_subscription(raw())
    assert sub.end_date is None
    assert sub.fed_high is False
    assert sub.sources == {}
    assert sub.snapshot_carry_days == 3
    assert sub.entitlement_qlus is None
    assert sub.alert_thresholds == (Decimal("0.8"), Decimal("1.0"))
    assert (sub.purge_rules.enabled, sub.purge_rules.inactive_days) == (False, 30)
    assert sub.purge_rules.terminated_days == 0
    assert (sub.container.heartbeat_minutes, sub.container.missed_heartbeats) == (15, 3)
    assert sub.fim_event_window_days == 30
    assert sub.image_scan_dedupe_hours == 24
    assert sub.late_data_days == 30
    assert (sub.rounding.utilization, sub.rounding.qlu) == ("half_up", "exact")
    assert sub.plan == "enterprise"
    assert sub.caps is None
    assert sub.subscription_type == "standard"
    assert sub.own_networks == ()
    assert sub.products["CSAM"].active_from is None
    assert sub.product_start("CSAM") == date(2024, 1, 1)
    assert all(sub.mode(source) == "snapshot" for source in ("scanner", "cloud_agent"))


def test_frozen() -> None:
    sub = parse_subscription(raw())
    with pytest.raises(ValidationError):
        sub.fed_high = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        sub.products["CSAM"].ratio = Decimal(2)  # type: ignore[misc]


def test_thresholds_sorted() -> None:
    sub = parse_subscription(raw(alert_thresholds=["1.2", "0.5", 1]))
    assert sub.alert_thresholds == (Decimal("0.5"), Decimal(1), Decimal("1.2"))
    assert parse_subscription(raw(alert_thresholds=[])).alert_thresholds == ()


def test_dates_from_date_objects_and_text() -> None:
    sub = parse_subscription(raw(start_date=date(2024, 2, 1), end_date="2024-02-01"))
    assert sub.start_date == sub.end_date == date(2024, 2, 1)


# --- plans and consultant subscriptions -------------------------------------------


@pytest.mark.parametrize(
    ("plan", "caps"),
    [
        ("enterprise", {}),
        ("express_lite", {"ip_addresses": 256, "web_apps": 25}),
        ("express", {"ip_addresses": 3072, "web_apps": 100}),
    ],
)
def test_plan_caps_of_fixed_plans(plan: str, caps: dict[str, int]) -> None:
    assert parse_subscription(raw(plan=plan)).plan_caps() == caps


def test_plan_caps_custom() -> None:
    sub = parse_subscription(raw(plan="custom", caps={"web_apps": 7}))
    assert sub.plan_caps() == {"web_apps": 7}
    both = parse_subscription(raw(plan="custom", caps={"ip_addresses": 9, "web_apps": 7}))
    assert both.plan_caps() == {"ip_addresses": 9, "web_apps": 7}


@pytest.mark.parametrize("plan", ["enterprise", "express_lite", "express"])
def test_caps_only_with_custom_plan(plan: str) -> None:
    message = rejected(raw(plan=plan, caps={"ip_addresses": 10}))
    assert message == f"caps: only allowed with plan: custom (plan is {plan})"


def test_custom_plan_needs_caps() -> None:
    assert rejected(raw(plan="custom")) == "caps: required with plan: custom"
    assert rejected(raw(plan="custom", caps={})).startswith("caps: set at least one")
    assert rejected(raw(plan="custom", caps={"ip_addresses": 0})).startswith("caps.ip_addresses: ")
    assert rejected(raw(plan="custom", caps={"web_apps": None, "x": 1})) == "caps.x: unknown key"


def test_unknown_plan() -> None:
    assert rejected(raw(plan="premium")).startswith("plan: ")


def test_consultant_networks_ipv4_and_ipv6() -> None:
    sub = parse_subscription(
        raw(
            subscription_type="consultant",
            own_networks=["10.1.2.3/8", "192.168.0.0/24", "2001:db8::1/32", "fd00::/8"],
        )
    )
    assert sub.own_networks == (
        ip_network("10.0.0.0/8"),
        ip_network("192.168.0.0/24"),
        ip_network("2001:db8::/32"),
        ip_network("fd00::/8"),
    )
    assert sub.to_json_dict()["own_networks"][2] == "2001:db8::/32"


def test_bad_cidr_names_the_entry() -> None:
    message = rejected(
        raw(subscription_type="consultant", own_networks=["10.0.0.0/8", "2001:db8::zz/32"])
    )
    assert message == "own_networks.1: '2001:db8::zz/32' is not a valid CIDR"
    assert rejected(raw(subscription_type="consultant", own_networks=[42])).startswith(
        "own_networks.0: "
    )


def test_own_networks_only_and_required_for_consultant() -> None:
    assert rejected(raw(own_networks=["10.0.0.0/8"])) == (
        "own_networks: only allowed with subscription_type: consultant"
    )
    assert rejected(raw(subscription_type="consultant")).startswith("own_networks: required")
    assert rejected(raw(subscription_type="consultant", own_networks=[])).startswith(
        "own_networks: required"
    )
    assert rejected(raw(subscription_type="reseller")).startswith("subscription_type: ")


# --- products and ratios --------------------------------------------------------------


@pytest.mark.parametrize("code", ["WAS", "PM"])
def test_fed_high_products(code: str) -> None:
    products = {code: {"ratio": "2"}}
    assert rejected(raw(products=products)) == f"products.{code}: {code} requires fed_high: true"
    assert rejected(raw(products=products, fed_high=False)).startswith(f"products.{code}: ")
    assert code in parse_subscription(raw(products=products, fed_high=True)).products


def test_unknown_product_code() -> None:
    message = rejected(raw(products={"CSAM": {"ratio": "1"}, "FOO": {"ratio": "1"}}))
    assert message == (
        "products.FOO: unknown product code 'FOO'; the codes are: " + ", ".join(PRODUCT_CODES)
    )


def test_product_codes_in_any_case_are_the_catalog_codes() -> None:
    sub = parse_subscription(raw(products={"csam": {"ratio": "1"}, "Vmdr": {"ratio": "2"}}))
    assert list(sub.products) == ["CSAM", "VMDR"]
    twice = rejected(raw(products={"csam": {"ratio": "1"}, "CSAM": {"ratio": "2"}}))
    assert twice == "products: product CSAM listed twice"


def test_products_required_non_empty() -> None:
    data = raw()
    del data["products"]
    assert rejected(data) == "products: field required"
    assert rejected(raw(products={})).startswith("products: ")


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        ("1.87", Decimal("1.87")),
        ("0.1", Decimal("0.1")),
        ("2", Decimal(2)),
        (3, Decimal(3)),
        (".5", Decimal("0.5")),
        ("1E-7", Decimal("1E-7")),
        (Decimal("0.25"), Decimal("0.25")),
    ],
)
def test_valid_ratios(ratio: Any, expected: Decimal) -> None:
    parsed = parse_subscription(raw(products={"CSAM": {"ratio": ratio}})).products["CSAM"].ratio
    assert parsed.as_tuple() == expected.as_tuple()


@pytest.mark.parametrize(
    ("ratio", "reason"),
    [
        (True, "expected a decimal number, not a boolean"),
        (1.5, "binary floats are not accepted; write the number as a decimal string"),
        ("1,5", "'1,5' is not a decimal number"),
        ("abc", "'abc' is not a decimal number"),
        ("NaN", "'NaN' is not a decimal number"),
        ("Infinity", "'Infinity' is not a decimal number"),
        ("1_5", "'1_5' is not a decimal number"),
        (" 1.5", "' 1.5' is not a decimal number"),
        (Decimal("NaN"), "NaN is not a finite number"),
        (Decimal("-Infinity"), "-Infinity is not a finite number"),
        ("0", "input should be greater than 0"),
        ("-1.5", "input should be greater than 0"),
        (0, "input should be greater than 0"),
        (None, "expected a decimal number, not NoneType"),
    ],
)
def test_invalid_ratios(ratio: Any, reason: str) -> None:
    assert rejected(raw(products={"CSAM": {"ratio": ratio}})) == f"products.CSAM.ratio: {reason}"


def test_ratio_required_and_product_terms_closed() -> None:
    assert rejected(raw(products={"CSAM": {}})) == "products.CSAM.ratio: field required"
    assert rejected(raw(products={"CSAM": {"ratio": "1", "rate": "2"}})) == (
        "products.CSAM.rate: unknown key"
    )
    assert rejected(raw(products={"CSAM": "1"})).startswith("products.CSAM: ")


def test_active_from_within_subscription() -> None:
    sub = raw(end_date="2024-06-30")
    early = {"CSAM": {"ratio": "1", "active_from": "2023-12-31"}}
    late = {"CSAM": {"ratio": "1", "active_from": "2024-07-01"}}
    assert rejected({**sub, "products": early}) == (
        "products.CSAM.active_from: 2023-12-31 is before start_date 2024-01-01"
    )
    assert rejected({**sub, "products": late}) == (
        "products.CSAM.active_from: 2024-07-01 is after end_date 2024-06-30"
    )
    edge = {"CSAM": {"ratio": "1", "active_from": "2024-06-30"}}
    assert parse_subscription({**sub, "products": edge}).product_start("CSAM") == date(2024, 6, 30)


def test_several_errors_joined() -> None:
    message = rejected(raw(products={"WAS": {"ratio": "1"}, "PM": {"ratio": "1"}}))
    assert message == (
        "products.WAS: WAS requires fed_high: true; products.PM: PM requires fed_high: true"
    )
    message = rejected(raw(snapshot_carry_days=-1, late_data_days="3"))
    assert message.startswith("snapshot_carry_days: ")
    assert "; late_data_days: " in message


# --- other keys -----------------------------------------------------------------------


def test_end_before_start() -> None:
    assert rejected(raw(end_date="2023-12-31")) == (
        "end_date: 2023-12-31 is before start_date 2024-01-01"
    )
    assert parse_subscription(raw(end_date="2024-01-01")).end_date == date(2024, 1, 1)


def test_required_keys() -> None:
    for key in ("subscription_id", "start_date"):
        data = raw()
        del data[key]
        assert rejected(data) == f"{key}: field required"


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        ("2024-1-1", "start_date: '2024-1-1' is not a date"),
        ("20240101", "start_date: '20240101' is not a date"),
        ("2024-02-30", "start_date: "),
        ("2024-01-01T00:00:00", "start_date: "),
        (20240101, "start_date: "),
    ],
)
def test_bad_dates(value: Any, prefix: str) -> None:
    assert rejected(raw(start_date=value)).startswith(prefix)


@pytest.mark.parametrize("value", ["", "a b", "x" * 65, "tenant/1", "ünï"])
def test_bad_subscription_id(value: str) -> None:
    assert rejected(raw(subscription_id=value)).startswith("subscription_id: ")


def test_subscription_id_limits() -> None:
    assert parse_subscription(raw(subscription_id="A_z-9" + "x" * 59)).subscription_id[:5] == (
        "A_z-9"
    )


def test_unknown_top_level_key() -> None:
    assert rejected(raw(plans="express")) == "plans: unknown key"


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("purge_rules", {"enabled": True, "inactive": 3}, "purge_rules.inactive"),
        ("container", {"heartbeat": 5}, "container.heartbeat"),
        ("rounding", {"utilisation": "exact"}, "rounding.utilisation"),
        ("sources", {"scanner": {"mode": "delta", "lag": 1}}, "sources.scanner.lag"),
    ],
)
def test_unknown_nested_key(key: str, value: Any, path: str) -> None:
    assert rejected(raw(**{key: value})) == f"{path}: unknown key"


def test_sources() -> None:
    sub = parse_subscription(
        raw(sources={"scanner": {"mode": "delta"}, "cmdb": {"mode": "snapshot"}})
    )
    assert (sub.mode("scanner"), sub.mode("cmdb"), sub.mode("easm")) == (
        "delta",
        "snapshot",
        "snapshot",
    )
    assert rejected(raw(sources={"nessus": {"mode": "delta"}})) == (
        "sources.nessus: unknown source 'nessus'"
    )
    assert rejected(raw(sources={"scanner": {"mode": "full"}})).startswith("sources.scanner.mode: ")
    assert rejected(raw(sources={"scanner": {}})) == "sources.scanner.mode: field required"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("fed_high", "true"),
        ("fed_high", 1),
        ("snapshot_carry_days", -1),
        ("snapshot_carry_days", True),
        ("snapshot_carry_days", "3"),
        ("snapshot_carry_days", 3.0),
        ("fim_event_window_days", 0),
        ("image_scan_dedupe_hours", -1),
        ("late_data_days", -1),
        ("entitlement_qlus", "-1"),
        ("entitlement_qlus", 100.5),
        ("entitlement_qlus", "1e"),
    ],
)
def test_bad_scalars(key: str, value: Any) -> None:
    assert rejected(raw(**{key: value})).startswith(f"{key}: ")


def test_zero_boundaries_accepted() -> None:
    sub = parse_subscription(
        raw(
            snapshot_carry_days=0,
            image_scan_dedupe_hours=0,
            late_data_days=0,
            entitlement_qlus="0",
            purge_rules={"inactive_days": 1, "terminated_days": 0},
            container={"heartbeat_minutes": 1, "missed_heartbeats": 1},
            fim_event_window_days=1,
        )
    )
    assert sub.entitlement_qlus == 0
    assert sub.purge_rules.inactive_days == 1


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("purge_rules", {"inactive_days": 0}, "purge_rules.inactive_days"),
        ("purge_rules", {"terminated_days": -1}, "purge_rules.terminated_days"),
        ("purge_rules", {"enabled": "yes"}, "purge_rules.enabled"),
        ("container", {"heartbeat_minutes": 0}, "container.heartbeat_minutes"),
        ("container", {"missed_heartbeats": 0}, "container.missed_heartbeats"),
        ("rounding", {"utilization": "down"}, "rounding.utilization"),
        ("rounding", {"qlu": "floor"}, "rounding.qlu"),
    ],
)
def test_bad_nested_values(key: str, value: Any, path: str) -> None:
    assert rejected(raw(**{key: value})).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["0.8", "0.80"], "alert_thresholds: duplicate threshold 0.8"),
        (["0", "1"], "alert_thresholds.0: input should be greater than 0"),
        (["0.5", 0.9], "alert_thresholds.1: binary floats are not accepted; write the number"),
        ("0.8", "alert_thresholds: expected a list, not str"),
    ],
)
def test_bad_thresholds(value: Any, message: str) -> None:
    assert rejected(raw(alert_thresholds=value)).startswith(message)


def test_top_level_not_a_mapping() -> None:
    assert rejected(["a"]) == "top level must be a mapping, not list"


# --- round trip ------------------------------------------------------------------------


def test_round_trip_of_every_key() -> None:
    sub = parse_subscription(
        raw(
            end_date="2025-01-31",
            fed_high=True,
            products={
                "WAS": {"ratio": "12.50"},
                "CSAM": {"ratio": "1E-7", "active_from": "2024-02-01"},
            },
            sources={"scanner": {"mode": "delta"}},
            snapshot_carry_days=0,
            entitlement_qlus="1000.000",
            alert_thresholds=["1.5", "0.25"],
            purge_rules={"enabled": True, "inactive_days": 10, "terminated_days": 2},
            container={"heartbeat_minutes": 5, "missed_heartbeats": 2},
            fim_event_window_days=7,
            image_scan_dedupe_hours=0,
            late_data_days=5,
            rounding={"utilization": "exact", "qlu": "half_up"},
            plan="custom",
            caps={"ip_addresses": 300},
            subscription_type="consultant",
            own_networks=["10.0.0.0/8", "2001:db8::/48"],
        )
    )
    data = sub.to_json_dict()
    assert data["products"]["WAS"]["ratio"] == "12.50"
    assert data["entitlement_qlus"] == "1000.000"
    assert data["alert_thresholds"] == ["0.25", "1.5"]
    assert data["start_date"] == "2024-01-01"
    assert data["products"]["CSAM"]["active_from"] == "2024-02-01"
    assert json.loads(json.dumps(data)) == data
    again = parse_subscription(data)
    assert again == sub
    assert again.products["WAS"].ratio.as_tuple() == Decimal("12.50").as_tuple()


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    sub = load_subscription(FIXTURES / "acme.yaml")
    path = write(tmp_path, "acme.json", json.dumps(sub.to_json_dict()))
    assert load_subscription(path) == sub


# --- loading files ---------------------------------------------------------------------


def test_yaml_floats_are_exact(tmp_path: Path) -> None:
    text = (
        "subscription_id: y\nstart_date: 2024-01-01\nentitlement_qlus: 1_000.50\n"
        "alert_thresholds: [0.3, 1.0e+0]\n"
        "products:\n  VMDR: {ratio: 1.87}\n  CSAM: {ratio: 0.1}\n  PC: {ratio: 2}\n"
    )
    sub = load_subscription(write(tmp_path, "s.yml", text))
    assert sub.products["VMDR"].ratio.as_tuple() == Decimal("1.87").as_tuple()
    assert sub.products["CSAM"].ratio.as_tuple() == Decimal("0.1").as_tuple()
    assert sub.products["PC"].ratio == 2
    assert sub.entitlement_qlus == Decimal("1000.50")
    assert sub.alert_thresholds == (Decimal("0.3"), Decimal(1))


@pytest.mark.parametrize("value", [".inf", "-.Inf", ".nan"])
def test_yaml_non_finite_floats_rejected(tmp_path: Path, value: str) -> None:
    text = f"subscription_id: y\nstart_date: 2024-01-01\nproducts:\n  CSAM: {{ratio: {value}}}\n"
    path = write(tmp_path, "s.yaml", text)
    with pytest.raises(ConfigError, match=r"invalid YAML: .* is not a finite decimal number"):
        load_subscription(path)


def test_json_floats_are_exact(tmp_path: Path) -> None:
    text = (
        '{"subscription_id": "j", "start_date": "2024-01-01", "entitlement_qlus": 1e3,'
        ' "products": {"VMDR": {"ratio": 1.87}, "CSAM": {"ratio": 0.1}, "PC": {"ratio": 3}}}'
    )
    sub = load_subscription(write(tmp_path, "s.json", text))
    assert sub.products["VMDR"].ratio.as_tuple() == Decimal("1.87").as_tuple()
    assert sub.products["CSAM"].ratio.as_tuple() == Decimal("0.1").as_tuple()
    assert sub.products["PC"].ratio == 3
    assert sub.entitlement_qlus == Decimal("1E+3")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_json_non_finite_rejected(tmp_path: Path, value: str) -> None:
    text = (
        '{"subscription_id": "j", "start_date": "2024-01-01",'
        f' "products": {{"CSAM": {{"ratio": {value}}}}}}}'
    )
    with pytest.raises(ConfigError, match=r"^products\.CSAM\.ratio: .*not a finite number$"):
        load_subscription(write(tmp_path, "s.json", text))


def test_file_validation_error_names_the_key(tmp_path: Path) -> None:
    text = "subscription_id: y\nstart_date: 2024-01-01\nproducts:\n  WAS: {ratio: 1}\n"
    with pytest.raises(ConfigError, match=r"^products\.WAS: WAS requires fed_high: true$"):
        load_subscription(write(tmp_path, "s.yaml", text))


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("s.yaml", "a: [1, 2\n", r"s\.yaml: invalid YAML: .*\(line \d+, column \d+\)$"),
        ("s.yaml", "a: 1\na: 2\n", r"s\.yaml: invalid YAML: duplicate key 'a' \(line 2, col"),
        ("s.json", '{"a": 1,}', r"s\.json: invalid JSON: "),
        ("s.json", '{"a": 1, "a": 2}', r"s\.json: invalid JSON: duplicate key 'a'$"),
        ("s.yaml", "- a\n- b\n", r"s\.yaml: top level must be a mapping, not list$"),
        ("s.yaml", "", r"s\.yaml: top level must be a mapping, not an empty file$"),
        ("s.json", "[1]", r"s\.json: top level must be a mapping, not list$"),
        ("s.toml", "a = 1", r"s\.toml: unsupported file type '\.toml'"),
        ("s.yaml", "a: !!python/object:os.system {}\n", r"s\.yaml: invalid YAML: "),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        load_subscription(write(tmp_path, name, text))
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read file: No such file"):
        load_subscription(tmp_path / "nope.yaml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(b'{"subscription_id": "\xff"}')
    with pytest.raises(ConfigError, match=r"s\.json: not UTF-8 text"):
        load_subscription(path)


def test_uppercase_suffix_and_str_path(tmp_path: Path) -> None:
    text = "subscription_id: y\nstart_date: 2024-01-01\nproducts: {CSAM: {ratio: 1}}\n"
    sub = load_subscription(str(write(tmp_path, "S.YML", text)))
    assert isinstance(sub, Subscription)


# --- property ------------------------------------------------------------------------


@given(
    st.decimals(
        min_value=Decimal("0.000001"),
        max_value=Decimal("1000000"),
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_ratios_kept_exactly(value: Decimal) -> None:
    text = str(value)
    sub = parse_subscription(raw(products={"VMDR": {"ratio": text}}))
    assert sub.products["VMDR"].ratio.as_tuple() == Decimal(text).as_tuple()
    assert str(parse_subscription(sub.to_json_dict()).products["VMDR"].ratio) == text

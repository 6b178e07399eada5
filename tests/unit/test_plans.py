"""Spec section 11: plan caps and consultant subscriptions, on the engine."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest

from qlumeter.config import ConfigError, parse_subscription
from qlumeter.summary import build_summary
from qlumeter_cli.local import meter_folder
from qlumeter_cli.main import main
from qlumeter_cli.report import render_html
from tests.support import obs, run, subscription, write_file

D1, D2, D3 = "2026-01-01", "2026-01-02", "2026-01-03"
CAPS = {"ip_addresses": 5, "web_apps": 2}


def hosts(on: str, count: int, source: str = "scanner", **kw: object) -> list:
    return [
        obs(source, on, asset_id=f"{source}-{i}", ips=[f"10.0.0.{i + 1}"], **kw)
        for i in range(count)
    ]


def alerts(sub: object, rows: list, on: str) -> list[dict]:
    return build_summary(sub, run(sub, rows, on))["alerts"]


def test_plan_caps_of_each_plan() -> None:
    assert subscription(["VMDR"], plan="express_lite").plan_caps() == {
        "ip_addresses": 256,
        "web_apps": 25,
    }
    assert subscription(["VMDR"], plan="express").plan_caps() == {
        "ip_addresses": 3072,
        "web_apps": 100,
    }
    assert subscription(["VMDR"]).plan_caps() == {}
    with pytest.raises(ConfigError, match="caps: only allowed with plan: custom"):
        subscription(["VMDR"], plan="express", caps=CAPS)
    with pytest.raises(ConfigError, match="own_networks"):
        subscription(["VMDR"], own_networks=["10.0.0.0/8"])
    with pytest.raises(ConfigError, match=r"own_networks\.0"):
        subscription(["VMDR"], subscription_type="consultant", own_networks=["10.0.0.300/8"])


def test_ip_addresses_count_distinct_pairs_of_active_scanner_and_agent_states() -> None:
    sub = subscription(["VMDR"], plan="custom", caps=CAPS)
    rows = hosts(D1, 3) + hosts(D1, 2, "cloud_agent", agent_id="a")  # 10.0.0.1-3, 10.0.0.1-2
    rows += [obs("cloud_agent", D1, agent_id="b", ips=["10.0.0.9"], network_id="branch")]
    rows += [obs("scanner", D1, asset_id="gone", ips=["10.0.0.8"], status="inactive")]
    rows += [obs("cmdb", D1, asset_id="cm", ips=["10.0.0.7"])]  # not a counted source
    assert alerts(sub, rows, D1) == [
        {"type": "plan_cap", "measure": "ip_addresses", "count": 4, "cap": 5, "level": "0.8"}
    ]


def test_web_apps_count_active_tas_and_was_states() -> None:
    sub = subscription(["TAS"], plan="custom", caps={"web_apps": 2})
    rows = [
        obs("tas", D1, "web_app", url="https://a.example.com"),
        obs("was", D1, "web_app", url="https://a.example.com"),
        obs("was", D1, "web_app", url="https://b.example.com"),
        obs("tas", D1, "web_app", url="https://c.example.com", status="decommissioned"),
        obs("tas", D1, "api_endpoint", url="https://a.example.com/api"),
    ]
    assert alerts(sub, rows, D1) == [
        {"type": "plan_cap", "measure": "web_apps", "count": 2, "cap": 2, "level": "1.0"}
    ]


def test_below_eighty_percent_nothing_is_in_force() -> None:
    sub = subscription(["VMDR"], plan="custom", caps=CAPS)
    assert alerts(sub, hosts(D1, 3), D1) == []


def test_consultant_own_networks_ipv4_ipv6_and_overlaps() -> None:
    sub = subscription(
        ["VMDR"],
        subscription_type="consultant",
        own_networks=["10.0.0.0/30", "10.0.0.0/8", "2001:db8::/32"],
    )
    rows = hosts(D1, 2)  # 10.0.0.1, 10.0.0.2: in both (overlapping) networks, counted once
    rows += [
        obs("scanner", D1, asset_id="v6", ips=["2001:db8::5", "192.0.2.1"]),
        obs("scanner", D1, asset_id="out", ips=["192.0.2.7"]),
        obs("cloud_agent", D1, agent_id="ag", ips=["10.9.9.9"]),
    ]  # not a scan
    assert alerts(sub, rows, D1) == [
        {
            "type": "own_network_scanned",
            "count": 3,
            "sample": ["10.0.0.1", "10.0.0.2", "2001:db8::5"],
        }
    ]
    assert alerts(sub, rows, D2) == []  # the scans were on D1: nothing on D2


def test_an_address_leaving_and_reentering_the_cap() -> None:
    sub = subscription(
        ["VMDR"], plan="custom", caps={"ip_addresses": 5}, sources={"scanner": {"mode": "delta"}}
    )
    rows = hosts(D1, 4)
    gone = obs("scanner", D2, asset_id="scanner-3", ips=["10.0.0.4"], status="decommissioned")
    rows.append(gone)
    rows.append(obs("scanner", D3, asset_id="scanner-3", ips=["10.0.0.4"]))
    levels = [[a.get("level") for a in alerts(sub, rows, d)] for d in (D1, D2, D3)]
    assert levels == [["0.8"], [], ["0.8"]]


def test_plan_counts_in_the_summary_table_report_and_explain(tmp_path: Path) -> None:
    data = {
        "subscription_id": "acme",
        "start_date": D1,
        "plan": "custom",
        "caps": CAPS,
        "products": {"VMDR": {"ratio": "1"}},
    }
    (tmp_path / "sub.json").write_text(json.dumps(data))
    rows = [
        {"asset_type": "host", "asset_id": f"h{i}", "ip": f"10.0.0.{i}", "modules": "vmdr"}
        for i in range(1, 5)
    ]
    write_file(tmp_path, "scanner", D1, rows)
    sub = parse_subscription(data)
    document, _, _ = meter_folder(sub, tmp_path, date.fromisoformat(D1))
    assert document["summary"]["plan"]["measures"] == [
        {"measure": "ip_addresses", "count": 4, "cap": 5},
        {"measure": "web_apps", "count": 0, "cap": 2},
    ]
    html = render_html(document, sub)
    assert 'id="plan"' in html and "ip_addresses" in html
    common = ["--subscription", str(tmp_path / "sub.json"), "--inventory", str(tmp_path)]
    out = io.StringIO()
    assert (
        main(
            ["meter", *common, "--as-of", D1, "--quiet", "--out", str(tmp_path / "r.json")],
            out,
            io.StringIO(),
        )
        == 0
    )
    assert "plan custom (standard): ip_addresses 4/5, web_apps 0/2" in out.getvalue()
    out = io.StringIO()
    assert main(["explain", *common, "--product", "VMDR", "--day", D1], out, io.StringIO()) == 0
    assert "plan ip_addresses: 4 of cap 5" in out.getvalue()

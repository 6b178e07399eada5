"""Spec sections 4 to 6: correlation, source modes, counting, ghosts and purge rules."""

from __future__ import annotations

from fractions import Fraction

import pytest

from qlumeter.observation import RowError
from tests.support import obs, run, series, subscription, usage_of, value_on

D1, D2, D3 = "2026-01-01", "2026-01-02", "2026-01-03"


def agent(on: str, agent_id: str, **kw: object) -> object:
    return obs("cloud_agent", on, agent_id=agent_id, **kw)


# -- correlation ------------------------------------------------------------------------


def test_observations_sharing_a_strong_identifier_are_one_entity() -> None:
    rows = [
        agent(D1, "ag-1", fqdn="web1.corp.example"),
        obs("scanner", D1, fqdn="WEB1.corp.example.".lower().rstrip("."), ips=["10.0.0.1"]),
        obs("csp_connector", D1, "virtual_machine", asset_id="x1", agent_id="ag-1"),
    ]
    m = run(subscription(["CSAM"]), rows, D1)
    assert value_on(m, "CSAM", D1) == 1


def test_union_is_transitive_and_canonical_id_is_highest_priority() -> None:
    rows = [
        obs("cmdb", D1, asset_id="a-9", fqdn="db.corp.example"),
        agent(D1, "ag-2", fqdn="db.corp.example", cloud_provider="aws", cloud_resource_id="i-1"),
        obs(
            "csp_connector",
            D1,
            "virtual_machine",
            cloud_provider="aws",
            cloud_resource_id="i-1",
            asset_id="a-1",
        ),
    ]
    m = run(subscription(["CSAM"]), rows, D1, detail_day=D1)
    counted = usage_of(m, "CSAM").daily[m.as_of].counted
    assert list(counted) == ["asset:a-1"]  # a-1 < a-9: ties go to the smallest


def test_fqdn_without_dot_or_localhost_is_not_an_identifier() -> None:
    rows = [
        obs("scanner", D1, fqdn="web01", ips=["10.0.0.1"]),
        obs("scanner", D1, fqdn="web01", ips=["10.0.0.2"]),
        obs("scanner", D1, fqdn="localhost.localdomain", ips=["10.0.0.3"]),
        obs("scanner", D1, fqdn="localhost.localdomain", ips=["10.0.0.4"]),
    ]
    assert value_on(run(subscription(["CSAM"]), rows, D1), "CSAM", D1) == 4


def test_row_without_any_identifier_is_rejected() -> None:
    with pytest.raises(RowError) as err:
        obs("scanner", D1, fqdn="web01")
    assert err.value.field == "asset_id"


def test_ip_only_row_joins_the_one_entity_holding_its_ip_that_day() -> None:
    rows = [
        agent(D1, "ag-1", ips=["10.0.0.1"]),
        obs("scanner", D1, ips=["10.0.0.1", "10.0.0.9"]),
        obs("scanner", D2, ips=["10.0.0.1"]),  # no strong holder on D2: its own entity
    ]
    m = run(
        subscription(
            ["CSAM"], sources={"scanner": {"mode": "delta"}, "cloud_agent": {"mode": "delta"}}
        ),
        rows,
        D2,
    )
    assert series(m, "CSAM") == {D1: "1", D2: "2"}


def test_ip_only_row_held_by_two_entities_is_keyed_by_its_smallest_ip() -> None:
    rows = [
        agent(D1, "ag-1", ips=["10.0.0.2"]),
        agent(D1, "ag-2", ips=["10.0.0.3"]),
        obs("scanner", D1, ips=["10.0.0.3", "10.0.0.2"], modules=["vmdr"]),
    ]
    m = run(subscription(["VMDR"]), rows, D1, detail_day=D1)
    assert usage_of(m, "VMDR").daily[m.as_of].counted == {"ip:default/10.0.0.2": "A2"}


def test_ip_pairs_are_scoped_by_network_id() -> None:
    rows = [
        agent(D1, "ag-1", ips=["10.0.0.1"], network_id="branch"),
        obs("scanner", D1, ips=["10.0.0.1"]),
    ]
    assert value_on(run(subscription(["CSAM"]), rows, D1), "CSAM", D1) == 2


def test_ip_only_rows_attach_as_correlated_for_the_metered_day() -> None:
    rows = [
        agent(D1, "ag-1", ips=["10.0.0.1"], modules=["vmdr"]),
        obs(
            "csp_connector",
            D1,
            "virtual_machine",
            cloud_provider="aws",
            cloud_resource_id="i-7",
            ips=["10.0.0.2"],
        ),
        obs("scanner", D1, ips=["10.0.0.1", "10.0.0.2"], modules=["vmdr"]),
        # D2: a row links the agent and the cloud instance: one entity from D2 on
        agent(D2, "ag-1", cloud_provider="aws", cloud_resource_id="i-7", modules=["vmdr"]),
    ]
    m = run(subscription(["VMDR"]), rows, D2)
    # D1: agent (A1), instance (B), IP-only row held by two entities -> its own (A2)
    # D2: linked; the D1 IP-only row now joins the one entity
    assert series(m, "VMDR") == {D1: "3", D2: "1"}


def test_a_link_seen_later_never_changes_an_earlier_day() -> None:
    rows = [
        agent(D1, "ag-1", fqdn="a.corp.example"),
        obs("scanner", D1, asset_id="s-1", ips=["10.0.0.5"]),
        obs("scanner", D2, asset_id="s-1", fqdn="a.corp.example"),
        agent(D2, "ag-1", fqdn="a.corp.example"),
    ]
    m = run(subscription(["CSAM"]), rows, D2)
    assert series(m, "CSAM") == {D1: "2", D2: "1"}


# -- source modes and counting --------------------------------------------------------------


def test_snapshot_entity_absent_from_the_newest_snapshot_is_not_counted() -> None:
    rows = [agent(D1, "ag-1"), agent(D1, "ag-2"), agent(D2, "ag-1")]
    assert series(run(subscription(["CSAM"]), rows, D2), "CSAM") == {D1: "2", D2: "1"}


def test_snapshot_carries_forward_over_missed_exports() -> None:
    rows = [agent(D1, "ag-1")]
    m = run(subscription(["CSAM"], snapshot_carry_days=2), rows, "2026-01-05")
    assert list(series(m, "CSAM").values()) == ["1", "1", "1", "0", "0"]


def test_an_empty_readable_snapshot_file_empties_the_source(tmp_path: object) -> None:
    from qlumeter.paths import parse_key

    rows = [agent(D1, "ag-1")]
    files = [parse_key(rows[0].path), parse_key(f"tenant=acme/source=cloud_agent/date={D2}/e.csv")]
    m = run(subscription(["CSAM"]), rows, D2, files=files)
    assert series(m, "CSAM") == {D1: "1", D2: "0"}


def test_delta_source_keeps_the_latest_observation_per_entity() -> None:
    rows = [agent(D1, "ag-1"), agent(D1, "ag-2"), agent(D3, "ag-1", status="decommissioned")]
    sub = subscription(["CSAM"], sources={"cloud_agent": {"mode": "delta"}})
    assert series(run(sub, rows, D3), "CSAM") == {D1: "2", D2: "2", D3: "1"}


def test_latest_observation_within_a_day_follows_observed_at() -> None:
    rows = [
        agent(D1, "ag-1", observed_at="2026-01-01T18:00:00+00:00", status="active", line=2),
        agent(D1, "ag-1", observed_at="2026-01-01T09:00:00+00:00", status="decommissioned", line=3),
    ]
    assert value_on(run(subscription(["CSAM"]), rows, D1), "CSAM", D1) == 1


def test_edr_inactive_still_counts_disabled_and_removed_do_not() -> None:
    rows = [
        agent(D1, "ag-1", modules=["edr"], status="inactive"),
        agent(D1, "ag-2", modules=["edr"], status="disabled"),
        agent(D1, "ag-3", modules=["edr"], status="deregistered"),
        agent(D1, "ag-4", modules=["edr"]),
        agent(D1, "ag-5", modules=["vmdr"]),
    ]
    assert value_on(run(subscription(["EDR"]), rows, D1), "EDR", D1) == 2


def test_cumulative_counts_whatever_the_status_then_or_later() -> None:
    rows = [
        agent(D1, "ag-1", modules=["vmdr"], status="terminated"),
        agent(D2, "ag-2", modules=["vmdr"]),
    ]
    assert series(run(subscription(["VMDR"]), rows, D3), "VMDR") == {D1: "1", D2: "2", D3: "2"}


def test_ghost_needs_both_counts_reported_and_none_non_zero() -> None:
    zero = {"open_port_count": 0, "vuln_count": 0}
    rows = [
        obs("scanner", D1, asset_id="g1", modules=["vmdr"], **zero),  # ghost
        obs("scanner", D1, asset_id="g2", modules=["vmdr"], open_port_count=0),  # unknown vulns
        obs("scanner", D1, asset_id="g3", modules=["vmdr"]),  # nothing reported
        obs("scanner", D1, asset_id="g4", modules=["vmdr"], open_port_count=0),
        obs("cmdb", D1, asset_id="g4", vuln_count=0),  # between two sources: ghost
        obs("scanner", D1, asset_id="g5", modules=["vmdr"], **zero),
        obs("cmdb", D1, asset_id="g5", vuln_count=2),  # a non-zero value: not a ghost
    ]
    m = run(subscription(["VMDR"]), rows, D1)
    assert usage_of(m, "VMDR").components == {"A1": 0, "A2": 5, "B": 0, "C": 2}
    assert value_on(m, "VMDR", D1) == 3


def test_ghost_uses_the_latest_observation_of_each_source() -> None:
    rows = [
        obs("scanner", D1, asset_id="g1", modules=["vmdr"], open_port_count=3, vuln_count=1),
        obs("scanner", D2, asset_id="g1", modules=["vmdr"], open_port_count=0, vuln_count=0),
    ]
    assert series(run(subscription(["VMDR"]), rows, D2), "VMDR") == {D1: "1", D2: "0"}


# -- purge rules ------------------------------------------------------------------------------

PURGE = {"enabled": True, "inactive_days": 5, "terminated_days": 2}


def test_without_purge_rules_nothing_is_purged() -> None:
    rows = [agent(D1, "ag-1", modules=["vmdr"], status="terminated")]
    m = run(subscription(["VMDR"]), rows, "2026-03-01")
    assert value_on(m, "VMDR", "2026-03-01") == 1


def test_purged_for_inactivity_then_back_when_seen_again() -> None:
    rows = [agent(D1, "ag-1", modules=["vmdr"]), agent("2026-01-10", "ag-1", modules=["vmdr"])]
    m = run(subscription(["VMDR"], purge_rules=PURGE), rows, "2026-01-10")
    values = series(m, "VMDR")
    assert values["2026-01-06"] == "1"  # 5 days after: not more than inactive_days
    assert values["2026-01-07"] == "0"
    assert values["2026-01-10"] == "1"


def test_purged_terminated_days_after_the_removed_run_starts() -> None:
    rows = [
        agent(D1, "ag-1", modules=["vmdr"]),
        agent(D2, "ag-1", modules=["vmdr"], status="terminated"),
        agent(D3, "ag-1", modules=["vmdr"], status="terminated"),
        agent("2026-01-05", "ag-1", modules=["vmdr"], status="active"),
    ]
    m = run(subscription(["VMDR"], purge_rules=PURGE), rows, "2026-01-05")
    assert list(series(m, "VMDR").values()) == ["1", "1", "1", "0", "1"]


def test_inventory_only_sources_do_not_keep_an_entity_alive() -> None:
    rows = [agent(D1, "ag-1", modules=["vmdr"], fqdn="old.corp.example")]
    rows += [obs("cmdb", f"2026-01-{d:02d}", fqdn="old.corp.example") for d in range(1, 11)]
    m = run(subscription(["VMDR"], purge_rules=PURGE), rows, "2026-01-10")
    assert series(m, "VMDR")["2026-01-07"] == "0"


def test_entity_seen_only_by_inventory_only_sources_uses_all_its_observations() -> None:
    rows = [obs("cmdb", f"2026-01-{d:02d}", fqdn="old.corp.example") for d in range(1, 11)]
    m = run(
        subscription(["ETM", "CSAM"], purge_rules=PURGE),
        rows,
        "2026-01-10",
        detail_day="2026-01-10",
    )
    assert usage_of(m, "CSAM").daily[m.as_of].counted == {}
    rows = [
        obs("cmdb", f"2026-01-{d:02d}", fqdn="old.corp.example", vuln_count=1) for d in range(1, 11)
    ]
    assert (
        value_on(
            run(subscription(["ETM"], purge_rules=PURGE), rows, "2026-01-10"), "ETM", "2026-01-10"
        )
        == 1
    )


def test_purge_leaves_every_product() -> None:
    rows = [
        agent(D1, "ag-1", modules=["vmdr", "edr", "paf"], vuln_count=1, status="terminated"),
    ]
    sub = subscription(
        ["VMDR", "EDR", "ETM", "CSAM"],
        purge_rules={"enabled": True},
        sources={"cloud_agent": {"mode": "delta"}},
    )
    m = run(sub, rows, D2)
    assert {u.code: str(u.daily[m.as_of].value) for u in m.products} == {
        "ETM": "0",
        "CSAM": "0",
        "VMDR": "0",
        "EDR": "0",
    }


def test_values_are_fractions() -> None:
    rows = [obs("ot_sensor", D1, "ot_asset", asset_id="p1", ot_level="enriched")]
    assert value_on(run(subscription(["VMDR_OT"]), rows, D1), "VMDR_OT", D1) == Fraction(2, 3)

"""The incremental replay (hypothesis): judging only what changed equals judging every
entity every day, and a state stored and restored mid-way changes nothing.

The plays mix every kind of entity and the changes that come with time alone: purge ages,
snapshots carried and expiring, FIM event windows, FlexScan attribution, CS heartbeats,
CIS scan chains, IP-only rows held by several entities until correlation joins them, and
the 15-day interval boundary.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlumeter.checkpoint import StateUnusable, state_format
from qlumeter.metering import Meter, meter
from qlumeter.observation import Observation
from tests.support import ALL, START, files_of, obs, subscription

DAYS = 18  # crosses the first 15-day interval
HOSTS = ["cloud_agent", "scanner", "csp_connector", "cmdb", "easm", "third_party"]
STATUSES = ["active", "active", "inactive", "disabled", "terminated", "deleted"]
MODULES = ["vmdr", "pc", "edr", "paf", "pm", "fim", "isl"]


def _host(draw: st.DrawFn, day: date) -> Observation:
    source = draw(st.sampled_from(HOSTS))
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["asset_id"] = f"as{draw(st.integers(0, 3))}"
    if source == "cloud_agent" or draw(st.booleans()):
        fields["agent_id"] = f"ag{draw(st.integers(0, 3))}"
        fields["agent_type"] = draw(st.sampled_from(["standard", "zlinux"]))
    if draw(st.booleans()):
        fields["cloud_provider"], fields["cloud_resource_id"] = "aws", f"i{draw(st.integers(0, 2))}"
    if draw(st.booleans()):
        fields["fqdn"] = f"h{draw(st.integers(0, 3))}.corp.example"
    ips = [f"10.0.0.{draw(st.integers(1, 4))}" for _ in range(draw(st.integers(0, 2)))]
    if not fields and not ips:
        ips = ["10.0.0.5"]
    if draw(st.booleans()):
        fields["last_fim_event_at"] = (
            f"{day - timedelta(days=draw(st.integers(-1, 4)))}T01:00:00+00:00"
        )
    return obs(
        source,
        day,
        draw(st.sampled_from(["host", "virtual_machine"])),
        name=f"f{draw(st.integers(0, 1))}",
        ips=ips,
        modules=draw(st.lists(st.sampled_from(MODULES), max_size=3)),
        status=draw(st.sampled_from(STATUSES)),
        vuln_count=draw(st.none() | st.integers(0, 2)),
        open_port_count=draw(st.none() | st.integers(0, 1)),
        observed_at=f"{day}T{draw(st.integers(0, 23)):02d}:00:00+00:00",
        **fields,
    )


def _other(draw: st.DrawFn, day: date) -> Observation:
    status = draw(st.sampled_from(STATUSES))
    hour = f"{day}T{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from(['00', '30']))}:00+00:00"
    kind = draw(st.integers(0, 7))
    if kind == 0:
        source = draw(st.sampled_from(["cspm", "flexscan", "cdr"]))
        return obs(
            source,
            day,
            draw(st.sampled_from(["virtual_machine", "serverless_function"])),
            cloud_provider="aws",
            cloud_resource_id=f"i{draw(st.integers(0, 2))}",
            status=status,
            vuln_count=draw(st.integers(0, 1)),
        )
    if kind == 1:
        return obs(
            "idp",
            day,
            "identity",
            identity_key=f"u{draw(st.integers(0, 2))}",
            idp=draw(st.sampled_from(["okta", "entra_id"])),
            status=status,
        )
    if kind == 2:
        source = draw(st.sampled_from(["tas", "was"]))
        return obs(
            source,
            day,
            draw(st.sampled_from(["web_app", "api_endpoint"])),
            url=f"https://a{draw(st.integers(0, 2))}.example",
            modules=[source] if draw(st.booleans()) else [],
            status=status,
        )
    if kind == 3:
        return obs(
            "container_sensor",
            day,
            "container_node",
            node_id=f"n{draw(st.integers(0, 2))}",
            modules=draw(st.lists(st.sampled_from(["cs_runtime", "fim"]), max_size=2)),
            status=status,
            observed_at=hour,
            last_fim_event_at=f"{day - timedelta(days=draw(st.integers(0, 3)))}T00:00:00+00:00",
        )
    if kind == 4:
        return obs(
            "image_scanner",
            day,
            "container_image_scan",
            image_digest=f"sha256:{draw(st.integers(0, 1))}",
            pipeline_stage=draw(st.sampled_from(["ci", "registry", "runtime"])),
            status=status,
            observed_at=hour,
        )
    if kind == 5:
        return obs(
            "serverless_sensor",
            day,
            "serverless_container",
            instance_id=f"s{draw(st.integers(0, 2))}",
            node_id=f"n{draw(st.integers(0, 2))}",
            status=status,
        )
    if kind == 6:
        return obs(
            "ot_sensor",
            day,
            "ot_asset",
            asset_id=f"ot{draw(st.integers(0, 2))}",
            ot_level=draw(st.sampled_from(["basic", "enriched", "vulnerable"])),
            status=status,
        )
    return obs(
        "pci_scanner",
        day,
        "ip_address",
        ips=[f"10.1.0.{draw(st.integers(1, 3))}"],
        modules=["pci"],
        status=status,
    )


@st.composite
def plays(draw: st.DrawFn) -> tuple[list[Observation], dict[str, Any]]:
    """Rows over ``DAYS`` days, and the subscription's terms."""
    rows = []
    for line in range(draw(st.integers(1, 45))):
        day = START + timedelta(days=draw(st.integers(0, DAYS - 1)))
        row = _host(draw, day) if draw(st.booleans()) else _other(draw, day)
        row.line = line + 2
        rows.append(row)
    sources = ["cloud_agent", "scanner", "cmdb", "idp", "tas", "cspm", "container_sensor"]
    terms: dict[str, Any] = {
        "sources": {s: {"mode": draw(st.sampled_from(["snapshot", "delta"]))} for s in sources},
        "snapshot_carry_days": draw(st.integers(0, 2)),
        "purge_rules": {
            "enabled": draw(st.booleans()),
            "inactive_days": draw(st.integers(1, 3)),
            "terminated_days": draw(st.integers(0, 2)),
        },
        "fim_event_window_days": draw(st.integers(1, 3)),
        "container": {"heartbeat_minutes": 60, "missed_heartbeats": draw(st.integers(1, 3))},
        "image_scan_dedupe_hours": draw(st.sampled_from([0, 12, 30])),
    }
    plan = draw(st.integers(0, 2))
    if plan == 1:
        terms |= {"plan": "custom", "caps": {"ip_addresses": 3, "web_apps": 2}}
    elif plan == 2:
        terms |= {"subscription_type": "consultant", "own_networks": ["10.0.0.0/30"]}
    return rows, terms


def _replay(meter_: Meter, rows: list[Observation], first: date, last: date) -> dict:
    """Feed the rows of ``first``..``last`` day by day; every value and plan day."""
    out: dict = {}
    day = first
    while day <= last:
        todays = [o for o in rows if o.day == day]
        meter_.add(files_of(todays), todays)
        for code, values in meter_.advance(day, day).items():
            for d, v in values.items():
                out[(code, d)] = (v.value, v.components)
        if day in meter_.plan_days:
            plan = meter_.plan_days[day]
            out[("plan", day)] = (plan.counts, plan.own_network)
        day += timedelta(days=1)
    return out


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(plays())
def test_judging_what_changed_equals_judging_everything(play: tuple) -> None:
    rows, terms = play
    sub = subscription(ALL, fed_high=True, **terms)
    last = START + timedelta(days=DAYS - 1)
    incremental = _replay(Meter(sub), rows, START, last)
    assert incremental == _replay(Meter(sub, judge_all=True), rows, START, last)


@SETTINGS
@given(plays(), st.integers(0, DAYS - 2))
def test_a_state_stored_and_restored_changes_nothing(play: tuple, split: int) -> None:
    rows, terms = play
    sub = subscription(ALL, fed_high=True, **terms)
    last, cut = START + timedelta(days=DAYS - 1), START + timedelta(days=split)
    expected = _replay(Meter(sub), rows, START, last)
    state = Meter(sub)
    values = _replay(state, rows, START, cut)
    state.compact()
    state = Meter.loads(state.dumps(), sub)
    values.update(_replay(state, rows, cut + timedelta(days=1), last))
    assert values == expected


def test_day_by_day_equals_one_metering_of_everything() -> None:
    rows = [
        obs("cloud_agent", START, agent_id="a", modules=["vmdr"]),
        obs("scanner", START + timedelta(days=1), fqdn="h.corp.example", modules=["vmdr"]),
        obs("cloud_agent", START + timedelta(days=2), agent_id="a", fqdn="h.corp.example"),
    ]
    sub = subscription(["VMDR", "CSAM"])
    last = START + timedelta(days=2)
    whole = meter(sub, files_of(rows), rows, last)
    expected = {
        (u.code, d): (v.value, v.components) for u in whole.products for d, v in u.daily.items()
    }
    assert _replay(Meter(sub), rows, START, last) == expected
    assert expected[("VMDR", last)][0] == 1  # the agent and the scanned host are one


def test_rows_of_days_already_replayed_are_counted_as_late() -> None:
    sub = subscription(["CSAM"])
    state = Meter(sub)
    state.add([], [])
    state.advance(START + timedelta(days=2), START)
    late = [obs("cloud_agent", START + timedelta(days=1), agent_id="a")]
    assert state.add(files_of(late), late) == 1


def test_a_state_of_an_earlier_format_is_not_read() -> None:
    sub = subscription(["CSAM"])
    earlier = b"\x80\x05\x95..."  # how a pickle (format 1) begins: never unpickled
    assert state_format(earlier) == 1
    with pytest.raises(StateUnusable, match="format 1"):
        Meter.loads(earlier, sub)


def test_a_state_of_other_counting_terms_is_not_read() -> None:
    state = Meter(subscription(["CSAM"]))
    state.advance(START, START)
    blob = state.dumps()
    assert state_format(blob) == 2
    with pytest.raises(StateUnusable, match="counting terms"):
        Meter.loads(blob, subscription(["CSAM"], snapshot_carry_days=5))
    with pytest.raises(StateUnusable, match="damaged"):
        Meter.loads(blob[:-10], subscription(["CSAM"]))


def test_an_ip_only_row_settled_after_its_snapshot_expired_and_was_compacted() -> None:
    """Day 0: two agents hold 10.0.0.1 and a scanner row names only that address, so it
    waits for correlation. Day 1: the scanner snapshot expires (carry 0) and the state is
    stored (compacted: the expired snapshot's rows go). Day 2: one fqdn joins the agents;
    the waiting row settles on the one entity without its expired snapshot."""
    day0, day1, day2 = START, START + timedelta(days=1), START + timedelta(days=2)
    rows = [
        obs("cloud_agent", day0, agent_id="ag0", ips=["10.0.0.1"], modules=["vmdr"]),
        obs("cloud_agent", day0, agent_id="ag1", ips=["10.0.0.1"], modules=["vmdr"]),
        obs("scanner", day0, ips=["10.0.0.1"], modules=["vmdr"]),
        obs("cloud_agent", day1, agent_id="ag0", ips=["10.0.0.1"], modules=["vmdr"]),
        obs("cloud_agent", day2, agent_id="ag0", fqdn="h.corp.example", modules=["vmdr"]),
        obs("cloud_agent", day2, agent_id="ag1", fqdn="h.corp.example", modules=["vmdr"]),
    ]
    sub = subscription(["VMDR", "CSAM"], snapshot_carry_days=0)
    expected = _replay(Meter(sub), rows, day0, day2)
    state = Meter(sub)
    values = _replay(state, rows, day0, day1)
    state.compact()
    state = Meter.loads(state.dumps(), sub)
    values.update(_replay(state, rows, day2, day2))
    assert values == expected
    assert expected[("VMDR", day2)][0] == 1  # the two agents are one host

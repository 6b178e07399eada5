"""Invariants (hypothesis): order independence, replays, and the window laws."""

from __future__ import annotations

import random
from datetime import date, timedelta
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlumeter.vocabulary import PRODUCT_CODES
from qlumeter.windows import avg90, peak15
from tests.support import obs, run, subscription

START = date(2026, 1, 1)
ALL = {code: {"ratio": "1"} for code in PRODUCT_CODES}
HOST_SOURCES = ["cloud_agent", "scanner", "csp_connector", "cmdb", "easm", "third_party"]


@st.composite
def host_rows(draw: st.DrawFn) -> list:
    """Host rows over 4 days whose identifiers overlap, so correlation has work to do."""
    rows = []
    for line in range(draw(st.integers(1, 25))):
        source = draw(st.sampled_from(HOST_SOURCES))
        ids = {}
        if draw(st.booleans()):
            ids["asset_id"] = f"as{draw(st.integers(0, 4))}"
        if source == "cloud_agent" or draw(st.booleans()):
            ids["agent_id"] = f"ag{draw(st.integers(0, 4))}"
        if draw(st.booleans()):
            ids["cloud_provider"], ids["cloud_resource_id"] = "aws", f"i{draw(st.integers(0, 3))}"
        if draw(st.booleans()):
            ids["fqdn"] = f"h{draw(st.integers(0, 4))}.corp.example"
        ips = [f"10.0.0.{draw(st.integers(1, 5))}" for _ in range(draw(st.integers(0, 2)))]
        if not ids and not ips:
            ips = ["10.0.0.9"]
        day = START + timedelta(days=draw(st.integers(0, 3)))
        rows.append(
            obs(
                source,
                day,
                draw(st.sampled_from(["host", "virtual_machine"])),
                name=f"f{draw(st.integers(0, 1))}",
                line=line + 2,
                ips=ips,
                modules=draw(
                    st.lists(st.sampled_from(["vmdr", "pc", "edr", "paf", "pm", "fim"]), max_size=3)
                ),
                status=draw(st.sampled_from(["active", "inactive", "terminated", "disabled"])),
                vuln_count=draw(st.none() | st.integers(0, 2)),
                open_port_count=draw(st.none() | st.integers(0, 2)),
                observed_at=f"{day}T{draw(st.integers(0, 23)):02d}:00:00+00:00",
                **ids,
            )
        )
        rows[-1].path = f"tenant=acme/source={source}/date={day}/f{line % 2}.csv"
    return rows


def every_series(rows: list, **sub: object) -> dict:
    m = run(subscription(ALL, fed_high=True, **sub), rows, START + timedelta(days=4))
    return {u.code: {d: (v.value, v.components) for d, v in u.daily.items()} for u in m.products}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host_rows(), st.randoms(use_true_random=False), st.booleans())
def test_numbers_do_not_depend_on_row_or_file_order(
    rows: list, rnd: random.Random, purge: bool
) -> None:
    sub = {"purge_rules": {"enabled": purge, "inactive_days": 1, "terminated_days": 1}}
    expected = every_series(rows, **sub)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    assert every_series(shuffled, **sub) == expected


@settings(max_examples=30, deadline=None)
@given(host_rows())
def test_feeding_the_same_file_twice_changes_nothing(rows: list) -> None:
    first = sorted({o.path for o in rows})[0]
    again = [o for o in rows if o.path == first]
    twice = [obs(o.source, o.day, o.asset_type, line=o.line, **_fields(o)) for o in again]
    for copy, original in zip(twice, again, strict=True):
        copy.path = original.path
    assert every_series(rows + twice) == every_series(rows)


def _fields(o: object) -> dict:
    keys = (
        "asset_id",
        "agent_id",
        "cloud_provider",
        "cloud_resource_id",
        "fqdn",
        "ips",
        "modules",
        "status",
        "vuln_count",
        "open_port_count",
        "observed_at",
    )
    return {k: getattr(o, k) for k in keys}


@given(st.fractions(min_value=0, max_value=10**6), st.integers(0, 200))
def test_peak15_of_a_constant_series_is_that_constant(value: Fraction, offset: int) -> None:
    as_of = START + timedelta(days=offset)
    series = {START + timedelta(days=i): value for i in range(offset + 1)}
    assert peak15(series, START, START, as_of).utilization == value


@given(st.lists(st.tuples(st.integers(0, 89), st.integers(0, 1000)), min_size=1, max_size=40))
def test_avg90_over_covered_days_ignores_gaps(points: list) -> None:
    as_of = START + timedelta(days=89)
    series = {START + timedelta(days=d): Fraction(v) for d, v in points}
    covered = set(series)
    w = avg90(series, START, as_of, covered.__contains__)
    assert w.covered_days == len(covered)
    assert w.utilization == sum(series.values()) / len(covered)

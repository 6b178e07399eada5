"""Invariants (hypothesis): order independence, replays, and the window laws."""

from __future__ import annotations

import random
from datetime import timedelta
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlumeter.windows import avg90, peak15
from tests.support import ALL, START, host_fields, host_rows, obs, run, subscription


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
    twice = [obs(o.source, o.day, o.asset_type, line=o.line, **host_fields(o)) for o in again]
    for copy, original in zip(twice, again, strict=True):
        copy.path = original.path
    assert every_series(rows + twice) == every_series(rows)


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

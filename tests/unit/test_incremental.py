"""The incremental ``Meter``: checkpointed day by day, it equals one metering of everything."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qlumeter.metering import Meter, meter
from tests.support import ALL, START, files_of, host_fields, host_rows, obs, subscription


def _values(daily: dict) -> dict:
    return {
        code: {d: (v.value, v.components) for d, v in days.items()} for code, days in daily.items()
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host_rows(), st.integers(0, 3))
def test_checkpointed_days_equal_a_single_run(rows: list, split: int) -> None:
    sub = subscription(ALL, fed_high=True, purge_rules={"enabled": True, "inactive_days": 1})
    last = START + timedelta(days=4)
    whole = meter(sub, files_of(rows), rows, last)
    expected = {
        u.code: {d: (v.value, v.components) for d, v in u.daily.items()} for u in whole.products
    }
    first_part = START + timedelta(days=split)
    state = Meter(sub)
    early = [o for o in rows if o.day <= first_part]
    state.add(files_of(early), early)
    daily = _values(state.advance(first_part, START))
    state.compact()
    state = Meter.loads(state.dumps(), sub)
    later = [
        obs(o.source, o.day, o.asset_type, line=o.line, **host_fields(o))
        for o in rows
        if o.day > first_part
    ]
    for copy, original in zip(later, [o for o in rows if o.day > first_part], strict=True):
        copy.path = original.path
    assert state.add(files_of(later), later) == 0
    for code, days in _values(state.advance(last, START)).items():
        daily[code].update(days)
    assert daily == expected


def test_rows_of_days_already_replayed_are_counted_as_late() -> None:
    sub = subscription(["CSAM"])
    state = Meter(sub)
    state.add([], [])
    state.advance(START + timedelta(days=2), START)
    late = [obs("cloud_agent", START + timedelta(days=1), agent_id="a")]
    assert state.add(files_of(late), late) == 1

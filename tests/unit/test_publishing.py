"""What a metering run publishes, decided without storage or a topic (``qlumeter.publishing``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qlumeter.publishing import (
    CORRECTION,
    EVENT_TYPES,
    INGEST_FAILED,
    INTERVAL_CLOSED,
    THRESHOLD_ALERT,
    USAGE_EVENTS,
    USAGE_SUMMARY,
    closes_interval,
    days_to_summarize,
    digest,
    level_crossed,
    levels,
    missing_sources,
    outgoing,
)
from tests.support import day

START = day(0)  # intervals: days 0-14, 15-29, 30-44, ...


@dataclass
class Sent:
    revision: int
    digest: str
    events: list[str] = field(default_factory=list)


def threshold(level: str) -> dict[str, Any]:
    return {"type": "threshold", "threshold": level}


def plan_cap(measure: str, level: str) -> dict[str, Any]:
    return {"type": "plan_cap", "measure": measure, "level": level}


def test_the_event_types() -> None:
    assert USAGE_EVENTS == (USAGE_SUMMARY, INTERVAL_CLOSED, THRESHOLD_ALERT, CORRECTION)
    assert (*USAGE_EVENTS, INGEST_FAILED) == EVENT_TYPES


def test_the_first_summary_of_the_as_of_day() -> None:
    out = outgoing(None, "n1", as_of_day=True, closes=False, crossed=False)
    assert (out.revision, out.events) == (1, (USAGE_SUMMARY,))


def test_a_rerun_with_the_same_numbers_publishes_nothing() -> None:
    summarized = Sent(1, "n1", [USAGE_SUMMARY])
    out = outgoing(summarized, "n1", as_of_day=True, closes=False, crossed=False)
    assert (out.revision, out.events) == (1, ())


def test_changed_numbers_are_a_correction_with_the_next_revision() -> None:
    last = Sent(2, "n1", [CORRECTION, USAGE_SUMMARY])
    for as_of_day in (True, False):
        out = outgoing(last, "n2", as_of_day=as_of_day, closes=False, crossed=False)
        assert (out.revision, out.events) == (3, (CORRECTION,))


def test_a_past_day_never_published_is_not_a_usage_summary() -> None:
    assert outgoing(None, "n1", as_of_day=False, closes=False, crossed=False).events == ()
    closing = outgoing(None, "n1", as_of_day=False, closes=True, crossed=False)
    assert (closing.revision, closing.events) == (1, (INTERVAL_CLOSED,))


def test_an_interval_closes_once_even_when_corrected() -> None:
    summarized = Sent(1, "n1", [USAGE_SUMMARY])
    out = outgoing(summarized, "n2", as_of_day=False, closes=True, crossed=False)
    assert (out.revision, out.events) == (2, (CORRECTION, INTERVAL_CLOSED))
    again = Sent(2, "n2", [CORRECTION, INTERVAL_CLOSED, USAGE_SUMMARY])
    assert outgoing(again, "n2", as_of_day=False, closes=True, crossed=False).events == ()
    assert outgoing(again, "n3", as_of_day=False, closes=True, crossed=False).events == (
        CORRECTION,
    )


def test_a_threshold_alert_goes_out_once_a_day_on_the_as_of_day_only() -> None:
    out = outgoing(None, "n1", as_of_day=True, closes=False, crossed=True)
    assert out.events == (USAGE_SUMMARY, THRESHOLD_ALERT)
    alerted = Sent(1, "n1", [THRESHOLD_ALERT, USAGE_SUMMARY])
    assert outgoing(alerted, "n1", as_of_day=True, closes=False, crossed=True).events == ()
    assert outgoing(None, "n1", as_of_day=False, closes=False, crossed=True).events == ()


def test_closes_interval() -> None:
    assert closes_interval(START, day(14), day(15))
    assert not closes_interval(START, day(14), day(14))  # not before the as-of day
    assert not closes_interval(START, day(13), day(20))
    assert closes_interval(START, day(29), day(40))


def test_days_to_summarize() -> None:
    # as of day 40: the window is days 0..40; intervals end on days 14 and 29
    assert days_to_summarize(START, day(40), day(40), {}) == [day(14), day(29), day(40)]
    published = {
        day(14): Sent(1, "a", [INTERVAL_CLOSED]),
        day(29): Sent(1, "b", [USAGE_SUMMARY]),
        day(35): Sent(1, "c", [USAGE_SUMMARY]),
        day(38): Sent(1, "d", [USAGE_SUMMARY]),
    }
    # replayed from day 36: the published days from then on; day 29 still to close
    assert days_to_summarize(START, day(40), day(36), published) == [day(29), day(38), day(40)]


def test_days_to_summarize_keeps_to_the_rolling_window() -> None:
    as_of = day(120)  # the window starts on day 31: the ends of days 14..29 are out of it
    days = days_to_summarize(START, as_of, as_of, {})
    assert days[0] == day(44) and days[-1] == as_of
    assert days == [day(n) for n in (44, 59, 74, 89, 104, 119, 120)]


def test_level_crossed() -> None:
    assert level_crossed([threshold("0.5")], [], {})
    assert not level_crossed([threshold("0.5")], ["0.5"], {})
    assert level_crossed([threshold("0.5"), threshold("0.8")], ["0.5"], {})
    assert not level_crossed([], ["0.5"], {})  # falling below is not a crossing
    assert level_crossed([plan_cap("ip_addresses", "100")], [], {"ip_addresses": "090"})
    assert not level_crossed([plan_cap("ip_addresses", "090")], [], {"ip_addresses": "100"})
    assert level_crossed([{"type": "own_network_scanned"}], [], {})
    assert levels([threshold("0.5"), plan_cap("web_apps", "080"), {"type": "other"}]) == (
        ["0.5"],
        {"web_apps": "080"},
    )


def test_digest_reads_the_numbers_only() -> None:
    summary = {"products": [{"product": "VMDR", "qlus": "3"}], "total_qlus": "3"}
    moved = dict(summary, revision=2, event_type=CORRECTION, generated_at="later")
    assert digest(summary) == digest(moved)
    assert digest(summary) != digest(dict(summary, total_qlus="4"))


def source_missing(source: str) -> dict[str, Any]:
    return {"type": "source_missing", "source": source, "last_day": None, "days_missing": 4}


def test_a_missing_source_is_told_once_per_episode() -> None:
    """The levels in force carry the missing sources: a source newly missing crosses; one
    still missing does not; one back and missing again crosses again."""
    episode = [[], [source_missing("cmdb")], [source_missing("cmdb")], [], [source_missing("cmdb")]]
    in_force: list[str] = []
    crossed = []
    for alerts in episode:
        crossed.append(level_crossed(alerts, [], {}, in_force))
        in_force = missing_sources(alerts)
    assert crossed == [False, True, False, False, True]
    both = [source_missing("cmdb"), source_missing("scanner")]
    assert level_crossed(both, [], {}, ["cmdb"]) and not level_crossed(
        both, [], {}, ["cmdb", "scanner"]
    )
    bounded = {"type": "source_missing", "count": 21, "sample": [source_missing("idp")]}
    assert missing_sources([bounded, threshold("0.8")]) == ["idp"]

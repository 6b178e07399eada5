"""A tenant's observations replayed day by day (spec sections 4 to 6).

``Timeline`` adds each day's observations in (day, observed_at, path, line) order and
builds a ``DayView`` for every day: the correlated host entities with their states,
cumulative marks, latest observations per source and purge status; the other
entities' states; and the raw histories the time-of-day rules need.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from .config import Subscription
from .correlation import IpIndex, UnionFind
from .observation import Kind, Observation
from .paths import FileRef
from .vocabulary import INVENTORY_ONLY_SOURCES

#: A predicate marking an observation for a cumulative component (bit i of ``flags``).
Mark = Callable[[Observation], bool]


class RunTracker:
    """Newest observation and the trailing run of removed statuses, for purge rules."""

    __slots__ = ("kept", "newest", "newest_day", "run")

    def __init__(self) -> None:
        self.newest = -1
        self.newest_day = date.min
        self.kept = -1  # seq of the newest observation whose status is not removed
        self.run: list[tuple[int, date]] = []  # removed observations after ``kept``

    def add(self, obs: Observation) -> None:
        self.newest, self.newest_day = obs.seq, obs.day
        if obs.removed:
            self.run.append((obs.seq, obs.day))
        else:
            self.kept = obs.seq
            self.run = []


def is_purged(
    trackers: Sequence[RunTracker], day: date, inactive_days: int, terminated_days: int
) -> bool:
    """Section 6 over one entity's trackers (several when correlation merged them)."""
    newest = max(trackers, key=lambda t: t.newest)
    if (day - newest.newest_day).days > inactive_days:
        return True
    kept = max(t.kept for t in trackers)
    if newest.newest <= kept:
        return False
    run_start = min(
        t.run[bisect.bisect_right(t.run, (kept, date.max))]
        for t in trackers
        if t.run and t.run[-1][0] > kept
    )
    return (day - run_start[1]).days >= terminated_days


class ElementInfo:
    """What the observations keyed by one identifier contribute to their entity."""

    __slots__ = ("every", "flags", "latest", "live")

    def __init__(self, track: bool) -> None:
        self.flags = 0
        self.latest: dict[str, Observation] = {}
        self.live: RunTracker | None = RunTracker() if track else None
        self.every: RunTracker | None = RunTracker() if track else None

    def add(self, obs: Observation, marks: Sequence[Mark]) -> None:
        for bit, mark in enumerate(marks):
            if mark(obs):
                self.flags |= 1 << bit
        self.latest[obs.slot()] = obs
        if self.every is not None and self.live is not None:
            self.every.add(obs)
            if obs.source not in INVENTORY_ONLY_SOURCES:
                self.live.add(obs)


class HostDay:
    """One correlated host entity as of a day."""

    __slots__ = ("canonical", "flags", "infos", "latest", "purged", "states")

    def __init__(self, canonical: str) -> None:
        self.canonical = canonical
        self.flags = 0
        self.infos: list[ElementInfo] = []
        self.latest: dict[str, Observation] = {}  # latest per slot, any day <= D
        self.states: dict[str, Observation] = {}
        self.purged = False

    def ghost(self) -> bool:
        """Latest observations per source report both counts, and neither is non-zero."""
        ports = vulns = False
        for obs in self.latest.values():
            if obs.open_port_count is not None:
                if obs.open_port_count:
                    return False
                ports = True
            if obs.vuln_count is not None:
                if obs.vuln_count:
                    return False
                vulns = True
        return ports and vulns


def _keep_latest(states: dict[str, Observation], obs: Observation) -> None:
    slot = obs.slot()
    held = states.get(slot)
    if held is None or held.seq < obs.seq:
        states[slot] = obs


@dataclass
class DayView:
    """Everything the product rules read for one day."""

    day: date
    uf: UnionFind
    hosts: dict[str, HostDay]
    others: dict[str, dict[str, Observation]]  # natural key -> states per slot
    today: list[Observation]
    timeline: Timeline


class Timeline:
    """Observations of one tenant from ``start`` on, replayed in day order."""

    def __init__(
        self,
        sub: Subscription,
        start: date,
        end: date,
        files: Iterable[FileRef],
        observations: Iterable[Observation],
        marks: Sequence[Mark],
    ) -> None:
        self.sub, self.start, self.end, self.marks = sub, start, end, marks
        self.track_purge = sub.purge_rules.enabled
        self.file_days: dict[str, list[date]] = defaultdict(list)
        for ref in files:
            if start <= ref.day <= end:
                self.file_days[ref.source].append(ref.day)
        for days in self.file_days.values():
            days[:] = sorted(set(days))
        self.by_day: dict[date, list[Observation]] = defaultdict(list)
        for obs in observations:
            if start <= obs.day <= end:
                self.by_day[obs.day].append(obs)
        self.snapshots: dict[tuple[str, date], list[Observation]] = defaultdict(list)
        self.uf = UnionFind()
        self.ips = IpIndex()
        self.host_infos: dict[str, ElementInfo] = {}
        self.ip_only: list[tuple[Observation, ElementInfo]] = []
        self.other_latest: dict[str, dict[str, Observation]] = {}
        self.histories: dict[str, list[Observation]] = defaultdict(list)  # nodes, image scans
        self.last_seen: dict[tuple[str, str], date] = {}  # (source, cloud key) -> day
        self.day: date | None = None
        self._today: list[Observation] = []
        self._seq = 0

    # -- replay ---------------------------------------------------------------------------

    def advance(self, day: date) -> None:
        """Add the observations of ``day``; days come in order."""
        assert self.day is None or day > self.day, "days are replayed in order"
        self.day = day
        today: list[Observation] = []
        ordered = sorted(self.by_day.pop(day, []), key=lambda o: (o.observed_at, o.path, o.line))
        for obs in ordered:
            if today and (today[-1].path, today[-1].line) == (obs.path, obs.line):
                continue  # the same row delivered twice
            today.append(obs)
            self._seq += 1
            obs.seq = self._seq
            self._add(obs)
        self._today = today

    def _add(self, obs: Observation) -> None:
        if self.sub.mode(obs.source) == "snapshot":
            self.snapshots[(obs.source, obs.day)].append(obs)
        if obs.kind is Kind.HOST:
            info = ElementInfo(self.track_purge)
            if obs.key is None:
                self.ip_only.append((obs, info))
            else:
                self.uf.link(obs.strong_ids)
                self.ips.add(obs)
                info = self.host_infos.setdefault(obs.key, info)
            info.add(obs, self.marks)
            return
        assert obs.key is not None
        self.other_latest.setdefault(obs.key, {})[obs.slot()] = obs
        if obs.kind in (Kind.NODE, Kind.IMAGE_SCAN):
            bisect.insort(self.histories[obs.key], obs, key=lambda o: o.time_order)
        elif obs.kind is Kind.CLOUD:
            self.last_seen[(obs.source, obs.key)] = obs.day

    # -- the view of a day ------------------------------------------------------------------

    def snapshot_day(self, source: str, day: date) -> date | None:
        """The day whose files are ``source``'s snapshot on ``day`` (carry-forward)."""
        days = self.file_days.get(source)
        if not days:
            return None
        i = bisect.bisect_right(days, day)
        if i == 0:
            return None
        newest = days[i - 1]
        return newest if (day - newest).days <= self.sub.snapshot_carry_days else None

    def entity_of(self, obs: Observation) -> str:
        """The host entity (union-find root or ``ip:`` key) an observation belongs to now."""
        return self.uf.find(obs.key) if obs.key is not None else self.ips.attach(obs, self.uf)

    def view(self) -> DayView:
        """The view of the day last added."""
        assert self.day is not None, "advance() first"
        day, today = self.day, self._today
        hosts: dict[str, HostDay] = {}
        uf = self.uf

        def host(entity: str) -> HostDay:
            held = hosts.get(entity)
            if held is None:
                held = hosts[entity] = HostDay(uf.canonical(entity) if entity in uf else entity)
            return held

        delta = {s for s in self.file_days if self.sub.mode(s) == "delta"}
        elements: Iterable[tuple[str, ElementInfo]] = (
            (uf.find(elem), info) for elem, info in self.host_infos.items()
        )
        attached = ((self.ips.attach(obs, uf), info) for obs, info in self.ip_only)
        for pairs in (elements, attached):
            for entity, info in pairs:
                hd = host(entity)
                hd.flags |= info.flags
                hd.infos.append(info)
                for obs in info.latest.values():
                    _keep_latest(hd.latest, obs)
                    if obs.source in delta:
                        _keep_latest(hd.states, obs)
        others: dict[str, dict[str, Observation]] = {}
        for key, latest in self.other_latest.items():
            for obs in latest.values():
                if obs.source in delta:
                    _keep_latest(others.setdefault(key, {}), obs)
        for source in self.file_days:
            if source in delta:
                continue
            snap_day = self.snapshot_day(source, day)
            if snap_day is None:
                continue
            for obs in self.snapshots.get((source, snap_day), ()):
                if obs.kind is Kind.HOST:
                    _keep_latest(hosts[self.entity_of(obs)].states, obs)
                else:
                    assert obs.key is not None
                    _keep_latest(others.setdefault(obs.key, {}), obs)
        if self.track_purge:
            rules = self.sub.purge_rules
            for hd in hosts.values():
                live = [i.live for i in hd.infos if i.live is not None and i.live.newest >= 0]
                trackers = live or [i.every for i in hd.infos if i.every is not None]
                hd.purged = is_purged(trackers, day, rules.inactive_days, rules.terminated_days)
        return DayView(day, uf, hosts, others, today, self)

    def days(self, first: date, last: date) -> Iterable[DayView]:
        """Replay from the timeline's start and yield the views of days ``first..last``."""
        day = self.start
        while day <= last:
            self.advance(day)
            if day >= first:
                yield self.view()
            day += timedelta(days=1)

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
from .observation import Kind, Observation, host_strong_ids
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

    def add(self, obs: Observation, flags: int) -> None:
        self.flags |= flags
        self.latest[obs.slot] = obs
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
        self.states: dict[str, Observation] = _NO_STATES  # replaced when it gets one
        self.purged = False

    def absorb(self, info: ElementInfo) -> None:
        """Add one identifier's contribution; a single one's ``latest`` is shared, not copied."""
        if not self.infos:
            self.latest = info.latest
        else:
            if len(self.infos) == 1:
                self.latest = dict(self.latest)
            for obs in info.latest.values():
                _keep_latest(self.latest, obs)
        self.flags |= info.flags
        self.infos.append(info)

    def add_state(self, obs: Observation) -> None:
        if self.states is _NO_STATES:
            self.states = {}
        elif self.states is self.latest:
            self.states = dict(self.latest)  # shared until it differs
        _keep_latest(self.states, obs)

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


_NO_STATES: dict[str, Observation] = {}


def _keep_latest(states: dict[str, Observation], obs: Observation) -> None:
    slot = obs.slot
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

    def __init__(self, sub: Subscription, start: date, marks: Sequence[Mark]) -> None:
        self.sub, self.start, self.marks = sub, start, marks
        self.end = sub.end_date or date.max
        self.track_purge = sub.purge_rules.enabled
        self.delta = {source for source, terms in sub.sources.items() if terms.mode == "delta"}
        self.file_days: dict[str, list[date]] = defaultdict(list)
        self.by_day: dict[date, list[Observation]] = defaultdict(list)
        self.snapshots: dict[tuple[str, date], list[Observation]] = defaultdict(list)
        self.uf = UnionFind()
        self.ips = IpIndex()
        self.host_infos: dict[str, ElementInfo] = {}
        self.ip_only: list[tuple[Observation, ElementInfo]] = []
        self.other_latest: dict[str, dict[str, Observation]] = {}
        self.histories: dict[str, list[Observation]] = defaultdict(list)  # nodes, image scans
        self.last_seen: dict[tuple[str, str], date] = {}  # (source, cloud key) -> day
        self.day: date | None = None  # the last day replayed
        self._today: list[Observation] = []
        self._seq = 0
        self._mark_cache: dict[tuple[object, ...], int] = {}

    def __getstate__(self) -> dict[str, object]:
        """Checkpoint state: the marks (code) are attached again by ``attach``."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("marks", "_mark_cache")}
        # Rows and files queued for later days are added again by whoever restores it.
        state["_today"], state["by_day"] = [], defaultdict(list)
        state["file_days"] = defaultdict(
            list,
            {
                source: [d for d in days if self.day is None or d <= self.day]
                for source, days in self.file_days.items()
            },
        )
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.marks, self._mark_cache = (), {}

    def attach(self, marks: Sequence[Mark], sub: Subscription) -> None:
        """Rejoin a restored checkpoint to the code's marks and the current subscription."""
        self.marks, self.sub = marks, sub

    def add(self, files: Iterable[FileRef], observations: Iterable[Observation]) -> int:
        """Queue files and rows; those before ``start``, after ``end_date`` or of days
        already replayed are left out. Returns how many rows came too late to add."""
        first = self.start if self.day is None else self.day + timedelta(days=1)
        for ref in files:
            days = self.file_days[ref.source]
            if first <= ref.day <= self.end and ref.day not in days:
                bisect.insort(days, ref.day)
        late = 0
        for obs in observations:
            if first <= obs.day <= self.end:
                self.by_day[obs.day].append(obs)
            elif self.start <= obs.day < first:
                late += 1
        return late

    def compact(self) -> None:
        """Drop snapshot rows that can no longer be any source's snapshot."""
        assert self.day is not None
        keep = {
            source: self.snapshot_day(source, self.day) or self.day for source in self.file_days
        }
        for source, day in list(self.snapshots):
            if day < keep.get(source, day):
                del self.snapshots[(source, day)]

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
        self.ips.close_day(day)
        self._today = today

    def _add(self, obs: Observation) -> None:
        if obs.source not in self.delta:
            self.snapshots[(obs.source, obs.day)].append(obs)
        if obs.kind is Kind.HOST:
            self.ips.add(obs)
            if obs.key is None:
                info = ElementInfo(self.track_purge)
                self.ip_only.append((obs, info))
            else:
                self.uf.link((obs.key, *host_strong_ids(obs)[1:]))  # one string per id
                info = self.host_infos.get(obs.key) or self.host_infos.setdefault(
                    obs.key, ElementInfo(self.track_purge)
                )
            info.add(obs, self._flags(obs))
            return
        assert obs.key is not None
        self.other_latest.setdefault(obs.key, {})[obs.slot] = obs
        if obs.kind in (Kind.NODE, Kind.IMAGE_SCAN):
            bisect.insort(self.histories[obs.key], obs, key=lambda o: o.time_order)
        elif obs.kind is Kind.CLOUD:
            self.last_seen[(obs.source, obs.key)] = obs.day

    def _flags(self, obs: Observation) -> int:
        """The cumulative marks an observation sets (cached: they depend on few fields)."""
        shape = (obs.source, obs.agent_id is None, obs.modules, obs.asset_type, obs.cloud_provider)
        flags = self._mark_cache.get(shape)
        if flags is None:
            flags = sum(1 << bit for bit, mark in enumerate(self.marks) if mark(obs))
            self._mark_cache[shape] = flags
        return flags

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

        delta = self.delta
        elements: Iterable[tuple[str, ElementInfo]] = (
            (uf.find(elem), info) for elem, info in self.host_infos.items()
        )
        attached = ((self.ips.attach(obs, uf), info) for obs, info in self.ip_only)
        for pairs in (elements, attached):
            for entity, info in pairs:
                held = hosts.get(entity)
                if held is None:
                    held = hosts[entity] = HostDay(uf.canonical(entity) if entity in uf else entity)
                held.absorb(info)
        if delta:
            for hd in hosts.values():
                if all(obs.source in delta for obs in hd.latest.values()):
                    hd.states = hd.latest  # every state is the latest observation: share it
                    continue
                for obs in hd.latest.values():
                    if obs.source in delta:
                        hd.add_state(obs)
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
                    hosts[self.entity_of(obs)].add_state(obs)
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
        """Replay the days after the last one up to ``last``; yield views from ``first``."""
        day = self.start if self.day is None else self.day + timedelta(days=1)
        while day <= last:
            self.advance(day)
            if day >= first:
                yield self.view()
            day += timedelta(days=1)

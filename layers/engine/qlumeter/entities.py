"""The per-entity state a replay keeps (spec sections 4 to 6): what one correlated host, or
one entity of another kind, has shown so far, and its purge status.

Rows are folded in as they are replayed and never kept as objects: an entity holds, per
state slot, its latest row (``Seen``), the snapshot rows in force, its cumulative marks
and the two purge trackers. Entities that correlation joins are merged; every merge is
exact whatever the order, so a replay and a restored state agree.
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

from .facts import Seen, keep_latest
from .vocabulary import INVENTORY_ONLY_SOURCES


class Contribution:
    """What one entity adds to the day's totals: ``entries`` of (key, amount), where a key
    is (product, component) — component "" for the value — or a plan measure. Shared by
    every entity that makes the same one; compared and hashed by identity."""

    __slots__ = ("entries",)

    def __init__(self, entries: tuple[tuple[tuple[str, ...], Fraction | int], ...]) -> None:
        self.entries = entries

    def __bool__(self) -> bool:
        return bool(self.entries)


NOTHING = Contribution(())


class Tracker:
    """Newest observation and the trailing run of removed statuses (section 6), over a set
    of observations given in any order."""

    __slots__ = ("kept", "newest", "newest_day", "run")

    def __init__(self) -> None:
        self.newest = -1  # seq of the newest observation; -1: none
        self.newest_day = date.min
        self.kept = -1  # seq of the newest observation whose status is not removed
        self.run: list[tuple[int, date]] = []  # removed observations after ``kept``, in order

    def add(self, seq: int, day: date, removed: bool) -> None:
        """One more observation (any order)."""
        if seq > self.newest:
            self.newest, self.newest_day = seq, day
            if not removed:
                self.kept, self.run = seq, []
            else:
                self.run.append((seq, day))
            return
        if not removed:
            if seq > self.kept:
                self.kept = seq
                self.run = [entry for entry in self.run if entry[0] > seq]
        elif seq > self.kept:
            self.run = sorted([*self.run, (seq, day)])

    def merge(self, other: Tracker) -> None:
        """Take in another tracker's observations."""
        if other.newest < 0:
            return
        if other.newest > self.newest:
            self.newest, self.newest_day = other.newest, other.newest_day
        kept = max(self.kept, other.kept)
        self.run = sorted(e for e in (*self.run, *other.run) if e[0] > kept)
        self.kept = kept

    def purged(self, day: date, inactive_days: int, terminated_days: int) -> bool:
        if (day - self.newest_day).days > inactive_days:
            return True
        if self.newest <= self.kept:
            return False
        return (day - self.run[0][1]).days >= terminated_days

    def changes_on(self, day: date, inactive_days: int, terminated_days: int) -> date | None:
        """The first day after ``day`` on which ``purged`` turns true with no new observation
        (None: it is purged already, and stays so until one comes)."""
        if self.purged(day, inactive_days, terminated_days):
            return None
        when = self.newest_day + timedelta(days=inactive_days + 1)
        if self.newest > self.kept:
            when = min(when, self.run[0][1] + timedelta(days=terminated_days))
        return when

    @classmethod
    def restored(
        cls, newest: int, newest_day: date, kept: int, run: list[tuple[int, date]]
    ) -> Tracker:
        tracker = cls.__new__(cls)
        tracker.newest, tracker.newest_day, tracker.kept, tracker.run = (
            newest,
            newest_day,
            kept,
            run,
        )
        return tracker

    def copy(self) -> Tracker:
        twin = Tracker()
        twin.newest, twin.newest_day, twin.kept = self.newest, self.newest_day, self.kept
        twin.run = list(self.run)
        return twin


class Host:
    """A correlated host entity (or one keyed by an IP address): latest row per slot, the
    snapshot rows in force per slot, cumulative marks, purge trackers, cloud identifiers."""

    __slots__ = ("clouds", "contrib", "every", "flags", "latest", "live", "snap")

    def __init__(self, purge: bool) -> None:
        self.flags = 0
        self.latest: dict[str, Seen] = {}
        self.snap: dict[str, Seen] = {}
        self.live: Tracker | None = Tracker() if purge else None  # rows of live sources
        self.every: Tracker | None = Tracker() if purge else None
        self.clouds: tuple[str, ...] = ()  # its cloud:<provider>/<id> identifiers
        self.contrib: Contribution = NOTHING

    @classmethod
    def restored(
        cls,
        flags: int,
        latest: dict[str, Seen],
        snap: dict[str, Seen],
        clouds: tuple[str, ...],
        contrib: Contribution,
    ) -> Host:
        """An entity as stored (its trackers are set after)."""
        host = cls.__new__(cls)
        host.flags, host.latest, host.snap, host.clouds, host.contrib = (
            flags,
            latest,
            snap,
            clouds,
            contrib,
        )
        host.live = host.every = None
        return host

    def fold(self, seen: Seen, flags: int) -> None:
        """One row of this entity (in any order)."""
        self.flags |= flags
        keep_latest(self.latest, seen)
        if self.every is not None and self.live is not None:
            removed = seen.fact.removed
            self.every.add(seen.seq, seen.day, removed)
            if seen.fact.source not in INVENTORY_ONLY_SOURCES:
                self.live.add(seen.seq, seen.day, removed)

    def add_cloud(self, ident: str) -> None:
        if ident not in self.clouds:
            self.clouds = (*self.clouds, ident)

    def merge(self, other: Host) -> None:
        """Take in an entity correlation found to be this one."""
        self.flags |= other.flags
        for seen in other.latest.values():
            keep_latest(self.latest, seen)
        for seen in other.snap.values():
            keep_latest(self.snap, seen)
        if self.live is not None and other.live is not None:
            self.live.merge(other.live)
        if self.every is not None and other.every is not None:
            self.every.merge(other.every)
        for ident in other.clouds:
            self.add_cloud(ident)

    def copy(self) -> Host:
        twin = Host(False)
        twin.flags, twin.clouds = self.flags, self.clouds
        twin.latest, twin.snap = dict(self.latest), dict(self.snap)
        twin.live = self.live.copy() if self.live is not None else None
        twin.every = self.every.copy() if self.every is not None else None
        return twin

    def purge_tracker(self) -> Tracker | None:
        """What purge rules look at: live rows, or every row of an entity seen only by
        inventory-only sources."""
        if self.live is None:
            return None
        return self.live if self.live.newest >= 0 else self.every

    def ghost(self) -> bool:
        """Latest rows per slot report both counts, and neither is non-zero (section 5)."""
        ports = vulns = False
        for seen in self.latest.values():
            fact = seen.fact
            if fact.ports is not None:
                if fact.ports:
                    return False
                ports = True
            if fact.vulns is not None:
                if fact.vulns:
                    return False
                vulns = True
        return ports and vulns


class Other:
    """An entity of a kind with a natural key: its states (delta latest and snapshot rows
    in force), per slot."""

    __slots__ = ("contrib", "latest", "snap")

    def __init__(self) -> None:
        self.latest: dict[str, Seen] = {}  # delta slots only
        self.snap: dict[str, Seen] = {}
        self.contrib: Contribution = NOTHING

    @classmethod
    def restored(
        cls, latest: dict[str, Seen], snap: dict[str, Seen], contrib: Contribution
    ) -> Other:
        other = cls.__new__(cls)
        other.latest, other.snap, other.contrib = latest, snap, contrib
        return other

    def states(self) -> list[Seen]:
        """Its states on the day, by slot."""
        if not self.snap:
            states = self.latest
        elif not self.latest:
            states = self.snap
        else:
            states = self.latest | self.snap
        return [states[slot] for slot in sorted(states)] if len(states) > 1 else [*states.values()]


class Pending:
    """An IP-only host row whose addresses were held by several entities on its day: it
    counts under its ``ip:`` key until correlation makes those entities one (section 4)."""

    __slots__ = ("candidates", "host", "ip_key", "seen")

    def __init__(
        self, seen: Seen, flags: int, candidates: tuple[str, ...], ip_key: str, purge: bool
    ) -> None:
        self.seen, self.candidates, self.ip_key = seen, candidates, ip_key
        self.host = Host(purge)  # what the row contributes to the entity it counts under
        self.host.fold(seen, flags)

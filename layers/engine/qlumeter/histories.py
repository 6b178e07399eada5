"""The time-of-day histories two products read (spec section 7, section 12 on order):
CS node heartbeats and CIS scan chains, each kept only as far back as a later day can
still need it.

Every row of day D has its ``observed_at`` on or after midnight of D-1 (section 3), so
once day D is replayed nothing can come before that time any more: what lies before is
final and is kept in a summarised form (CIS: the last counted scan) or dropped (CS: a
heartbeat older than the liveness window no longer makes a node live).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction

from .facts import Fact
from .numbers import ZERO

#: One container-sensor row of a node: (observed_at, path, line, fact), in time order.
Beat = tuple[datetime, str, int, Fact]
#: One image-scan row: (observed_at, path, line, counts as a scan, day).
Scan = tuple[datetime, str, int, bool, date]


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


@dataclass
class NodeSnapshots:
    """CS hourly snapshots of a day: the mean count, the nodes counted in any hour."""

    value: Fraction
    counted: set[str] = field(default_factory=set)
    per_hour: list[int] = field(default_factory=lambda: [0] * 24)


class Heartbeats:
    """Container-sensor rows per node, while they can still make a node live."""

    def __init__(self) -> None:
        self.nodes: dict[str, list[Beat]] = {}

    def add(self, key: str, beat: Beat) -> None:
        bisect.insort(self.nodes.setdefault(key, []), beat, key=lambda b: b[:3])

    def snapshots(self, day: date, window: timedelta) -> NodeSnapshots:
        """At each hour H of ``day``: nodes whose latest row at or before H is within the
        window, active and with ``cs_runtime``."""
        start = midnight(day)
        hours = [start + timedelta(hours=h) for h in range(24)]
        result = NodeSnapshots(ZERO)
        for key, beats in self.nodes.items():
            if beats[-1][0] <= start - window:
                continue
            for h, at in enumerate(hours):
                i = bisect.bisect_right(beats, at, key=lambda b: b[0])
                if i == 0:
                    continue
                seen, _, _, fact = beats[i - 1]
                if seen > at - window and fact.active and "cs_runtime" in fact.modules:
                    result.per_hour[h] += 1
                    result.counted.add(key)
        result.value = Fraction(sum(result.per_hour), 24)
        return result

    def trim(self, day: date, window: timedelta) -> None:
        """Drop the rows that cannot count on any day after ``day``."""
        cutoff = midnight(day + timedelta(days=1)) - window
        for key in list(self.nodes):
            beats = self.nodes[key]
            i = bisect.bisect_right(beats, cutoff, key=lambda b: b[0])
            if i == len(beats):
                del self.nodes[key]
            elif i:
                del beats[:i]


class ScanChain:
    """One image digest's scans: the last counted scan before ``settled``, then the rows
    from there on."""

    __slots__ = ("last", "rows", "settled")

    def __init__(self) -> None:
        self.last: datetime | None = None
        self.settled: datetime | None = None
        self.rows: list[Scan] = []

    @classmethod
    def restored(
        cls, last: datetime | None, settled: datetime | None, rows: list[Scan]
    ) -> ScanChain:
        chain = cls()
        chain.last, chain.settled, chain.rows = last, settled, rows
        return chain

    def settle(self, until: datetime, window: timedelta) -> None:
        """Fold the rows before ``until`` (which no later row can precede) into ``last``."""
        if self.settled is not None and until <= self.settled:
            return
        i = 0
        for at, _, _, scan, _ in self.rows:
            if at >= until:
                break
            i += 1
            if scan and (self.last is None or at - self.last >= window):
                self.last = at
        del self.rows[:i]
        self.settled = until


class ScanChains:
    """CIS de-duplication (section 7): a scan of a digest strictly less than the window
    after the previous counted scan of that digest is the same scan."""

    def __init__(self) -> None:
        self.chains: dict[str, ScanChain] = {}

    def add(self, key: str, scan: Scan) -> None:
        chain = self.chains.get(key) or self.chains.setdefault(key, ScanChain())
        bisect.insort(chain.rows, scan, key=lambda s: s[:3])

    def counted(self, day: date, digests: set[str], window: timedelta) -> dict[str, str]:
        """The scans counted on ``day`` (``path:line`` -> digest) of the digests with a
        row that day."""
        counted: dict[str, str] = {}
        until = midnight(day - timedelta(days=1))
        for digest in sorted(digests):
            chain = self.chains[digest]
            chain.settle(until, window)
            last = chain.last
            for at, path, line, scan, seen_on in chain.rows:
                if scan and (last is None or at - last >= window):
                    last = at
                    if seen_on == day:
                        counted[f"{path}:{line}"] = digest
        return counted

    def trim(self, day: date, window: timedelta) -> None:
        """Settle every chain as of the day after ``day``; forget the digests whose last
        counted scan can no longer bar a later one."""
        until = midnight(day)
        for key in list(self.chains):
            chain = self.chains[key]
            chain.settle(until, window)
            if not chain.rows and (chain.last is None or chain.last + window <= until):
                del self.chains[key]

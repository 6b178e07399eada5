"""The stored form of a tenant's metering state (``Meter``): versioned, compact, no pickle.

Layout: ``QLMS`` and a one-byte format version, then one zlib stream holding a JSON
header (its length first, 4 bytes) followed by binary columns. The header carries the
subscription's counting terms, each timeline's small parts (day, file days, snapshots in
force, the plan's recent days), the facts (the few hundred distinct rule-relevant row
values) and the contributions; every string (identifiers, paths) is stored once. The
columns are little-endian integer arrays, each of the narrowest width that holds it:

- ``seen.*``: every kept row (seq, day, fact, path, line) and its address pairs;
- ``uf.*``: the correlation forest (identifier, parent) and the canonical ids of groups;
- ``host.*`` / ``other.*`` / ``pending.*``: entities with their latest and snapshot rows,
  marks, purge trackers, cloud identifiers and current contribution;
- ``snap.*``, ``beat.*``, ``scan.*``, ``flex.*``, ``wake.*``: snapshot rows in force,
  recent CS heartbeats and CIS scans, FlexScan sightings, the wake-up calendar.

A list of lists is a length column (``.n``) and a flat column (``.v``). A state of another
format, or of other counting terms, is not read: ``decode`` raises ``StateUnusable`` and
the caller recomputes from the stored rows. Format 1 was the pickle of earlier releases
(never unpickled: it is recognised by its first byte); format 2 is this one.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from .config import Subscription
from .correlation import UnionFind
from .entities import NOTHING, Contribution, Host, Other, Pending, Tracker
from .facts import Fact, Seen, intern_fact
from .histories import ScanChain
from .observation import Kind
from .plans import PlanDay
from .timeline import Timeline, Wakeups

if TYPE_CHECKING:
    from .metering import Meter

MAGIC = b"QLMS"
FORMAT = 2
_PICKLE = b"\x80"  # how format 1 (a pickle) begins
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEVEL = 1  # zlib: the columns are narrow already; speed matters more than the last MB
_WIDTHS = (("b", 8), ("h", 16), ("i", 32), ("q", 64))


class StateUnusable(ValueError):
    """A stored state this release does not read; the caller recomputes."""


def state_format(blob: bytes) -> int | None:
    """The format a stored state was written in (None: not a state)."""
    if blob.startswith(MAGIC) and len(blob) > len(MAGIC):
        return blob[len(MAGIC)]
    return 1 if blob.startswith(_PICKLE) else None


# -- encoding -------------------------------------------------------------------------------


class _Writer:
    """Interned strings and facts, and named integer columns."""

    def __init__(self) -> None:
        self.strings: dict[str, int] = {}
        self.facts: dict[Fact, int] = {}
        self.columns: list[tuple[str, str, int, bytes]] = []

    def ids(self, texts: Iterable[str]) -> list[int]:
        strings = self.strings
        return [strings.setdefault(t, len(strings)) for t in texts]

    def fact_ids(self, facts: Iterable[Fact]) -> list[int]:
        table = self.facts
        return [table.setdefault(f, len(table)) for f in facts]

    def put(self, name: str, values: Sequence[int]) -> None:
        code = "b"
        if values:
            low, high = min(values), max(values)
            code = next(
                c for c, bits in _WIDTHS if -(1 << bits - 1) <= low and high < 1 << bits - 1
            )
        column = array(code, values)
        if sys.byteorder != "little":
            column.byteswap()
        self.columns.append((name, code, len(column), column.tobytes()))

    def ragged(self, name: str, lists: Sequence[Sequence[int]]) -> None:
        self.put(f"{name}.n", [len(values) for values in lists])
        self.put(f"{name}.v", [value for values in lists for value in values])

    def ragged_texts(self, name: str, lists: Sequence[Sequence[str]]) -> None:
        """Lists of strings, as ids."""
        self.put(f"{name}.n", [len(values) for values in lists])
        self.put(f"{name}.v", self.ids(text for values in lists for text in values))


def _us(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _fact_fields(fact: Fact) -> list[Any]:
    values = list(fact.fields())
    values[2] = fact.kind.value
    values[7] = sorted(fact.modules)
    values[13] = fact.fim_day.isoformat() if fact.fim_day else None
    return values


def encode(meter: Meter) -> bytes:
    """The state as bytes."""
    from .metering import counting_terms

    w = _Writer()
    contribs: dict[tuple[Any, ...], int] = {(): 0}
    timelines = [
        _encode_timeline(w, contribs, f"t{i}.", timeline)
        for i, timeline in enumerate(meter.timelines.values())
    ]
    strings = list(w.strings)
    text = "".join(strings).encode("utf-8", "surrogateescape")
    w.put("strings.n", [len(s) for s in strings])
    header = {
        "format": FORMAT,
        "counting_terms": json.loads(json.dumps(counting_terms(meter.sub), default=str)),
        "timelines": timelines,
        "plan_days": {
            d.isoformat(): {"counts": p.counts, "own_network": p.own_network}
            for d, p in sorted(meter.plan_days.items())
        },
        "facts": [_fact_fields(f) for f in w.facts],
        "contributions": [[[list(k), str(a)] for k, a in entries] for entries in contribs],
        "text": len(text),
        "columns": [[name, code, length] for name, code, length, _ in w.columns],
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    body = b"".join([struct.pack("<I", len(head)), head, text, *(c[3] for c in w.columns)])
    return MAGIC + bytes([FORMAT]) + zlib.compress(body, _LEVEL)


def _encode_timeline(
    w: _Writer, contribs: dict[tuple[Any, ...], int], prefix: str, timeline: Timeline
) -> dict[str, Any]:
    assert not timeline.today, "a state is stored between days"
    hosts = list(timeline.hosts.values())
    others = list(timeline.others.values())
    pendings = [p for waiting in timeline.pending.values() for p in waiting]
    snapshots = list(timeline.snapshots.items())
    rows = [
        *(s for h in hosts for s in h.latest.values()),
        *(s for h in hosts for s in h.snap.values()),
        *(s for o in others for s in o.latest.values()),
        *(s for o in others for s in o.snap.values()),
        *(p.seen for p in pendings),
        *(s for _, entries in snapshots for _, s in entries),
    ]
    unique = list({id(s): s for s in rows}.values())
    index = {id(s): i for i, s in enumerate(unique)}
    p = prefix
    w.put(f"{p}seen.seq", [s.seq for s in unique])
    w.put(f"{p}seen.day", [s.day.toordinal() for s in unique])
    w.put(f"{p}seen.fact", w.fact_ids(s.fact for s in unique))
    w.put(f"{p}seen.path", w.ids(s.path for s in unique))
    w.put(f"{p}seen.line", [s.line for s in unique])
    w.ragged_texts(f"{p}seen.pairs", [[x for pair in s.pairs for x in pair] for s in unique])

    def contrib(value: Contribution) -> int:
        return contribs.setdefault(value.entries, len(contribs))

    parents = timeline.uf.parents()
    w.put(f"{p}uf.id", w.ids(parents))
    w.put(f"{p}uf.parent", w.ids(parents.values()))
    best = timeline.uf.merged()
    w.put(f"{p}uf.root", w.ids(best))
    w.put(f"{p}uf.best", w.ids(best.values()))

    w.put(f"{p}host.key", w.ids(timeline.hosts))
    w.put(f"{p}host.flags", [h.flags for h in hosts])
    w.ragged(f"{p}host.latest", [[index[id(s)] for s in h.latest.values()] for h in hosts])
    w.ragged(f"{p}host.snap", [[index[id(s)] for s in h.snap.values()] for h in hosts])
    w.ragged_texts(f"{p}host.clouds", [h.clouds for h in hosts])
    w.put(f"{p}host.contrib", [contrib(h.contrib) for h in hosts])
    if timeline.purge is not None:
        for name in ("live", "every"):
            trackers = [getattr(h, name) for h in hosts]
            w.put(f"{p}host.{name}.newest", [t.newest for t in trackers])
            w.put(f"{p}host.{name}.newest_day", [t.newest_day.toordinal() for t in trackers])
            w.put(f"{p}host.{name}.kept", [t.kept for t in trackers])
            w.ragged(
                f"{p}host.{name}.run",
                [[v for s, d in t.run for v in (s, d.toordinal())] for t in trackers],
            )
    pending_ids = {id(pending): i for i, pending in enumerate(pendings)}
    w.put(f"{p}pending.seen", [index[id(x.seen)] for x in pendings])
    w.put(f"{p}pending.flags", [x.host.flags for x in pendings])
    w.put(f"{p}pending.key", w.ids(x.ip_key for x in pendings))
    w.ragged_texts(f"{p}pending.candidates", [x.candidates for x in pendings])

    w.put(f"{p}other.key", w.ids(timeline.others))
    w.ragged(f"{p}other.latest", [[index[id(s)] for s in o.latest.values()] for o in others])
    w.ragged(f"{p}other.snap", [[index[id(s)] for s in o.snap.values()] for o in others])
    w.put(f"{p}other.contrib", [contrib(o.contrib) for o in others])

    entries = [entry for _, rows_ in snapshots for entry in rows_]
    w.put(
        f"{p}snap.kind",
        [2 if isinstance(h, Pending) else int(s.fact.kind is not Kind.HOST) for h, s in entries],
    )
    w.put(
        f"{p}snap.handle",
        [
            pending_ids[id(h)]
            if isinstance(h, Pending)
            else w.strings.setdefault(h, len(w.strings))
            for h, _ in entries
        ],
    )
    w.put(f"{p}snap.seen", [index[id(s)] for _, s in entries])

    nodes = list(timeline.heartbeats.nodes.items())
    w.put(f"{p}beat.key", w.ids(k for k, _ in nodes))
    w.ragged(
        f"{p}beat.rows",
        [
            [
                v
                for at, path, line, f in beats
                for v in (_us(at), *w.ids((path,)), line, *w.fact_ids((f,)))
            ]
            for _, beats in nodes
        ],
    )
    chains = list(timeline.scans.chains.items())
    w.put(f"{p}scan.key", w.ids(k for k, _ in chains))
    w.put(f"{p}scan.last", [-1 if c.last is None else _us(c.last) for _, c in chains])
    w.put(f"{p}scan.settled", [-1 if c.settled is None else _us(c.settled) for _, c in chains])
    w.ragged(
        f"{p}scan.rows",
        [
            [
                v
                for at, path, line, scan, day in c.rows
                for v in (_us(at), *w.ids((path,)), line, int(scan), day.toordinal())
            ]
            for _, c in chains
        ],
    )
    w.put(f"{p}flex.key", w.ids(timeline.flexscan))
    w.put(f"{p}flex.day", [d.toordinal() for d in timeline.flexscan.values()])
    wakeups = list(timeline.wakeups.items())
    w.put(f"{p}wake.day", [d.toordinal() for d, _ in wakeups])
    w.ragged_texts(f"{p}wake.hosts", [sorted(due.hosts) for _, due in wakeups])
    w.ragged_texts(f"{p}wake.others", [sorted(due.others) for _, due in wakeups])
    return {
        "start": timeline.start.isoformat(),
        "codes": list(timeline.codes),
        "day": timeline.day.isoformat() if timeline.day else None,  # None: not started
        "seq": timeline.seq,
        "file_days": {s: [d.isoformat() for d in days] for s, days in timeline.file_days.items()},
        "in_force": {s: d.isoformat() for s, d in timeline.in_force.items()},
        "snapshots": [[source, day.isoformat(), len(rows_)] for (source, day), rows_ in snapshots],
    }


# -- decoding -------------------------------------------------------------------------------


class _Reader:
    def __init__(self, header: dict[str, Any], body: memoryview) -> None:
        self.facts = [_fact(values) for values in header["facts"]]
        self.columns: dict[str, array[int]] = {}
        size = header["text"]
        text = bytes(body[:size]).decode("utf-8", "surrogateescape")
        offset = size
        for name, code, length in header["columns"]:
            column = array(code)
            end = offset + column.itemsize * length
            column.frombytes(body[offset:end])
            if sys.byteorder != "little":
                column.byteswap()
            self.columns[name] = column
            offset = end
        if offset != len(body):
            raise StateUnusable("stored state is truncated or has trailing data")
        ends = list(accumulate(self.columns["strings.n"]))
        self.strings = [text[a:b] for a, b in zip([0, *ends], ends, strict=False)]

    def col(self, name: str) -> array[int]:
        return self.columns[name]

    def ragged(self, name: str) -> list[array[int]]:
        flat, out, start = self.columns[f"{name}.v"], [], 0
        for length in self.columns[f"{name}.n"]:
            out.append(flat[start : start + length])
            start += length
        return out

    def ragged_texts(self, name: str) -> list[tuple[str, ...]]:
        strings, flat = self.strings, iter(self.columns[f"{name}.v"])
        return [
            tuple(strings[next(flat)] for _ in range(n)) if n else ()
            for n in self.columns[f"{name}.n"]
        ]

    def by_slot(self, name: str, seens: list[Seen]) -> list[dict[str, Seen]]:
        """Lists of rows as dictionaries by slot."""
        rows = iter([seens[i] for i in self.columns[f"{name}.v"]])
        out: list[dict[str, Seen]] = []
        for n in self.columns[f"{name}.n"]:
            if n == 1:
                row = next(rows)
                out.append({row.fact.slot: row})
            else:
                states = {}
                for _ in range(n):
                    row = next(rows)
                    states[row.fact.slot] = row
                out.append(states)
        return out

    def texts(self, name: str) -> list[str]:
        strings = self.strings
        return [strings[i] for i in self.columns[name]]


def _fact(values: list[Any]) -> Fact:
    values = list(values)
    values[2] = Kind(values[2])
    values[7] = frozenset(values[7])
    values[13] = date.fromisoformat(values[13]) if values[13] else None
    return intern_fact(*values)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _parse_amount(text: str) -> Fraction | int:
    value = Fraction(text)
    return int(value) if value.denominator == 1 else value


def decode(blob: bytes, sub: Subscription) -> Meter:
    """A stored state back on the current subscription, or ``StateUnusable``."""
    from .metering import Meter, counting_terms

    found = state_format(blob)
    if found != FORMAT:
        what = "not a meter state" if found is None else f"format {found}"
        raise StateUnusable(f"stored state is {what}; this release reads format {FORMAT}")
    try:
        payload = zlib.decompress(blob[len(MAGIC) + 1 :])
        (size,) = struct.unpack_from("<I", payload)
        header = json.loads(payload[4 : 4 + size])
        reader = _Reader(header, memoryview(payload)[4 + size :])
    except (zlib.error, struct.error, ValueError, KeyError) as exc:
        raise StateUnusable(f"stored state is damaged: {exc}") from None
    terms = json.loads(json.dumps(counting_terms(sub), default=str))
    if header["counting_terms"] != terms:
        raise StateUnusable("the subscription's counting terms changed: recompute from the start")
    meter = Meter(sub)
    stored = header["timelines"]
    if [(t["start"], t["codes"]) for t in stored] != [
        (start.isoformat(), list(t.codes)) for start, t in meter.timelines.items()
    ]:
        raise StateUnusable("stored state has other product groups: recompute from the start")
    contribs = [
        Contribution(tuple((tuple(key), _parse_amount(amount)) for key, amount in entries))
        if entries
        else NOTHING
        for entries in header["contributions"]
    ]
    for i, (timeline, data) in enumerate(zip(meter.timelines.values(), stored, strict=True)):
        _decode_timeline(reader, contribs, f"t{i}.", timeline, data)
    meter.plan_days = {
        date.fromisoformat(d): PlanDay(dict(p["counts"]), list(p["own_network"]))
        for d, p in header["plan_days"].items()
    }
    return meter


def _decode_timeline(
    r: _Reader,
    contribs: list[Contribution],
    p: str,
    timeline: Timeline,
    data: dict[str, Any],
) -> None:
    strings, facts, day_of = r.strings, r.facts, date.fromordinal
    paths = r.texts(f"{p}seen.path")
    days = {d: day_of(d) for d in set(r.col(f"{p}seen.day"))}
    seens = [
        Seen(seq, days[day], facts[fact], path, line, _pairs(pairs))
        for seq, day, fact, path, line, pairs in zip(
            r.col(f"{p}seen.seq"),
            r.col(f"{p}seen.day"),
            r.col(f"{p}seen.fact"),
            paths,
            r.col(f"{p}seen.line"),
            r.ragged_texts(f"{p}seen.pairs"),
            strict=True,
        )
    ]
    timeline.day = date.fromisoformat(data["day"]) if data["day"] else None
    timeline.seq = data["seq"]
    timeline.file_days = {
        s: [date.fromisoformat(d) for d in days] for s, days in data["file_days"].items()
    }
    timeline.in_force = {s: date.fromisoformat(d) for s, d in data["in_force"].items()}
    timeline.uf = UnionFind.restore(
        dict(zip(r.texts(f"{p}uf.id"), r.texts(f"{p}uf.parent"), strict=True)),
        dict(zip(r.texts(f"{p}uf.root"), r.texts(f"{p}uf.best"), strict=True)),
    )
    hosts = [
        Host.restored(flags, latest, snap, clouds, contribs[contrib])
        for flags, latest, snap, clouds, contrib in zip(
            r.col(f"{p}host.flags"),
            r.by_slot(f"{p}host.latest", seens),
            r.by_slot(f"{p}host.snap", seens),
            r.ragged_texts(f"{p}host.clouds"),
            r.col(f"{p}host.contrib"),
            strict=True,
        )
    ]
    purge = timeline.purge is not None
    if purge:
        for host, live, every in zip(
            hosts, _trackers(r, f"{p}host.live"), _trackers(r, f"{p}host.every"), strict=True
        ):
            host.live, host.every = live, every
    timeline.hosts = dict(zip(r.texts(f"{p}host.key"), hosts, strict=True))
    pendings: list[Pending] = []
    for row, flags, ip_key, candidates in zip(
        r.col(f"{p}pending.seen"),
        r.col(f"{p}pending.flags"),
        r.texts(f"{p}pending.key"),
        r.ragged_texts(f"{p}pending.candidates"),
        strict=True,
    ):
        pending = Pending(seens[row], flags, candidates, ip_key, purge)
        timeline.pending.setdefault(ip_key, []).append(pending)
        pendings.append(pending)
    others = []
    for latest, snap, contrib in zip(
        r.by_slot(f"{p}other.latest", seens),
        r.by_slot(f"{p}other.snap", seens),
        r.col(f"{p}other.contrib"),
        strict=True,
    ):
        other = Other()
        other.latest, other.snap, other.contrib = latest, snap, contribs[contrib]
        others.append(other)
    timeline.others = dict(zip(r.texts(f"{p}other.key"), others, strict=True))
    entries = iter(
        zip(r.col(f"{p}snap.kind"), r.col(f"{p}snap.handle"), r.col(f"{p}snap.seen"), strict=True)
    )
    for source, day, count in data["snapshots"]:
        snapshot: list[tuple[str | Pending, Seen]] = []
        for _ in range(count):
            kind, handle, row = next(entries)
            snapshot.append((pendings[handle] if kind == 2 else strings[handle], seens[row]))
        timeline.snapshots[(source, date.fromisoformat(day))] = snapshot
    for key, flat in zip(r.texts(f"{p}beat.key"), r.ragged(f"{p}beat.rows"), strict=True):
        timeline.heartbeats.nodes[key] = [
            (_at(flat[i]), strings[flat[i + 1]], flat[i + 2], facts[flat[i + 3]])
            for i in range(0, len(flat), 4)
        ]
    for key, last, settled, flat in zip(
        r.texts(f"{p}scan.key"),
        r.col(f"{p}scan.last"),
        r.col(f"{p}scan.settled"),
        r.ragged(f"{p}scan.rows"),
        strict=True,
    ):
        chain = ScanChain()
        chain.last = None if last < 0 else _at(last)
        chain.settled = None if settled < 0 else _at(settled)
        chain.rows = [
            (
                _at(flat[i]),
                strings[flat[i + 1]],
                flat[i + 2],
                bool(flat[i + 3]),
                day_of(flat[i + 4]),
            )
            for i in range(0, len(flat), 5)
        ]
        timeline.scans.chains[key] = chain
    timeline.flexscan = dict(
        zip(r.texts(f"{p}flex.key"), map(day_of, r.col(f"{p}flex.day")), strict=True)
    )
    for day, hosts_due, others_due in zip(
        r.col(f"{p}wake.day"),
        r.ragged_texts(f"{p}wake.hosts"),
        r.ragged_texts(f"{p}wake.others"),
        strict=True,
    ):
        timeline.wakeups[day_of(day)] = Wakeups(set(hosts_due), set(others_due))
    census = timeline.census
    for held in [*(h.contrib for h in hosts), *(o.contrib for o in others)]:
        if held:
            census[held] = census.get(held, 0) + 1


def _pairs(flat: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(flat[::2], flat[1::2], strict=True)) if flat else ()


def _trackers(r: _Reader, name: str) -> list[Tracker]:
    out = []
    for newest, newest_day, kept, run in zip(
        r.col(f"{name}.newest"),
        r.col(f"{name}.newest_day"),
        r.col(f"{name}.kept"),
        r.ragged(f"{name}.run"),
        strict=True,
    ):
        t = Tracker()
        t.newest, t.newest_day, t.kept = newest, date.fromordinal(newest_day), kept
        if run:
            t.run = [(run[i], date.fromordinal(run[i + 1])) for i in range(0, len(run), 2)]
        out.append(t)
    return out

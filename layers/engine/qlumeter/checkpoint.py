"""The stored form of a tenant's metering state (``Meter``): versioned, compact, no pickle.

Layout: ``QLMS`` and a one-byte format version, then one zlib stream holding a JSON
header (its length first, 4 bytes), the text of every text column, and the integer
columns. The header carries the subscription's counting terms, each timeline's small
parts (day, file days, snapshots in force, the plan's recent days), the facts (the few
hundred distinct rule-relevant row values), the file paths and the contributions, each
once. Integer columns are little-endian arrays of the narrowest width that holds them; a
text column is a column of lengths and its text; a list of lists is a length column
(``.n``) and a flat column (``.v``). Per timeline:

- ``seen.*``: every kept row (seq, day, fact, path, line) and its address pairs;
- ``host.*``: host entities by their correlation group (the root, the other identifiers,
  which of them is canonical, which are cloud ids), with their latest and snapshot rows,
  marks, purge trackers and current contribution; ``ip:`` keyed entities have no group;
- ``other.*`` / ``pending.*``: entities of other kinds, IP-only rows waiting for
  correlation;
- ``snap.*``, ``beat.*``, ``scan.*``, ``flex.*``, ``wake.*``: snapshot rows in force,
  recent CS heartbeats and CIS scans, FlexScan sightings, the wake-up calendar; entities
  are named by their position among ``host.*`` or ``other.*``.

A state of another format, or of other counting terms, is not read: ``decode`` raises
``StateUnusable`` and the caller recomputes from the stored rows. Format 1 was the pickle
of earlier releases (never unpickled: it is recognised by its first byte); format 2 is
this one.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from itertools import accumulate, chain, pairwise
from typing import TYPE_CHECKING, Any

from .config import Subscription
from .entities import NOTHING, Contribution, Host, Other, Pending, Tracker
from .facts import Fact, Seen, intern_fact
from .histories import Beat, Scan, ScanChain
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
_HOST, _OTHER, _PENDING = 0, 1, 2  # what a snapshot entry or a wake-up names


class StateUnusable(ValueError):
    """A stored state this release does not read; the caller recomputes."""


def state_format(blob: bytes) -> int | None:
    """The format a stored state was written in (None: not a state)."""
    if blob.startswith(MAGIC) and len(blob) > len(MAGIC):
        return blob[len(MAGIC)]
    return 1 if blob.startswith(_PICKLE) else None


def _numbered(table: dict[Any, int], items: Iterable[Any]) -> list[int]:
    """Each item's number in ``table``, numbering the new ones in order of appearance."""
    items = items if isinstance(items, list) else list(items)
    fresh = [item for item in dict.fromkeys(items) if item not in table]
    table.update(zip(fresh, range(len(table), len(table) + len(fresh)), strict=True))
    return list(map(table.__getitem__, items))


def _us(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


# -- encoding -------------------------------------------------------------------------------


class _Writer:
    """Named integer and text columns, and the small shared tables."""

    def __init__(self) -> None:
        self.columns: list[tuple[str, str, int, bytes]] = []
        self.text: list[str] = []
        self.text_at: dict[str, int] = {}  # text column -> where its text starts
        self.size = 0
        self.facts: dict[Fact, int] = {}
        self.paths: dict[str, int] = {}

    def put(self, name: str, values: Sequence[int]) -> None:
        code = "b"
        if values:
            low, high = min(values), max(values)
            code = next(c for c, b in _WIDTHS if -(1 << b - 1) <= low and high < 1 << b - 1)
        column = array(code, values)
        if sys.byteorder != "little":
            column.byteswap()
        self.columns.append((name, code, len(column), column.tobytes()))

    def ragged(self, name: str, lists: Sequence[Sequence[int]]) -> None:
        self.put(f"{name}.n", [len(values) for values in lists])
        self.put(f"{name}.v", list(chain.from_iterable(lists)))

    def texts(self, name: str, texts: Sequence[str]) -> None:
        lengths = [len(text) for text in texts]
        self.put(name, lengths)
        self.text_at[name] = self.size
        self.size += sum(lengths)
        self.text.extend(texts)

    def ragged_texts(self, name: str, lists: Sequence[Sequence[str]]) -> None:
        self.put(f"{name}.n", [len(values) for values in lists])
        self.texts(f"{name}.v", list(chain.from_iterable(lists)))


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
    text = "".join(w.text).encode("utf-8", "surrogateescape")
    header = {
        "format": FORMAT,
        "counting_terms": json.loads(json.dumps(counting_terms(meter.sub), default=str)),
        "timelines": timelines,
        "plan_days": {
            d.isoformat(): {"counts": p.counts, "own_network": p.own_network}
            for d, p in sorted(meter.plan_days.items())
        },
        "facts": [_fact_fields(f) for f in w.facts],
        "paths": list(w.paths),
        "contributions": [[[list(k), str(a)] for k, a in entries] for entries in contribs],
        "text": len(text),
        "texts": w.text_at,
        "columns": [[name, code, length] for name, code, length, _ in w.columns],
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    body = b"".join([struct.pack("<I", len(head)), head, text, *(c[3] for c in w.columns)])
    return MAGIC + bytes([FORMAT]) + zlib.compress(body, _LEVEL)


def _encode_timeline(
    w: _Writer, contribs: dict[tuple[Any, ...], int], p: str, timeline: Timeline
) -> dict[str, Any]:
    assert not timeline.today, "a state is stored between days"
    uf = timeline.uf
    keys = list(timeline.hosts)
    hosts = list(timeline.hosts.values())
    host_number = dict(zip(keys, range(len(keys)), strict=True))
    other_keys = list(timeline.others)
    others = list(timeline.others.values())
    other_number = dict(zip(other_keys, range(len(other_keys)), strict=True))
    pendings = [pending for waiting in timeline.pending.values() for pending in waiting]
    pending_number = {id(pending): i for i, pending in enumerate(pendings)}
    snapshots = list(timeline.snapshots.items())
    entries = [entry for _, rows in snapshots for entry in rows]

    kept = {  # every kept row once, by its seq (unique within a replay)
        s.seq: s
        for s in chain(
            chain.from_iterable(h.latest.values() for h in hosts),
            chain.from_iterable(h.snap.values() for h in hosts),
            chain.from_iterable(o.latest.values() for o in others),
            chain.from_iterable(o.snap.values() for o in others),
            (pending.seen for pending in pendings),
            (seen for _, seen in entries),
        )
    }
    seens = list(kept.values())
    rows = dict(zip(kept, range(len(kept)), strict=True))  # seq -> position
    w.put(f"{p}seen.seq", [s.seq for s in seens])
    w.put(f"{p}seen.day", [s.day.toordinal() for s in seens])
    w.put(f"{p}seen.fact", _numbered(w.facts, [s.fact for s in seens]))
    w.put(f"{p}seen.path", _numbered(w.paths, [s.path for s in seens]))
    w.put(f"{p}seen.line", [s.line for s in seens])
    w.ragged_texts(f"{p}seen.pairs", [[x for pair in s.pairs for x in pair] for s in seens])

    def seen_lists(name: str, lists: Sequence[Iterable[Seen]]) -> None:
        w.put(f"{name}.n", [len(x) for x in lists])  # type: ignore[arg-type]
        w.put(f"{name}.v", [rows[s.seq] for s in chain.from_iterable(lists)])

    def contributions(values: list[Contribution]) -> list[int]:
        numbers = {c: contribs.setdefault(c.entries, len(contribs)) for c in dict.fromkeys(values)}
        return list(map(numbers.__getitem__, values))

    groups, best = uf.store(keys)
    w.texts(f"{p}host.key", keys)
    w.ragged_texts(f"{p}host.members", [group[1:] for group in groups])
    w.put(f"{p}host.best", best)
    w.ragged(
        f"{p}host.clouds",
        [
            [group.index(c) for c in h.clouds] if h.clouds else ()
            for h, group in zip(hosts, groups, strict=True)
        ],
    )
    w.put(f"{p}host.flags", [h.flags for h in hosts])
    seen_lists(f"{p}host.latest", [h.latest.values() for h in hosts])
    seen_lists(f"{p}host.snap", [h.snap.values() for h in hosts])
    w.put(f"{p}host.contrib", contributions([h.contrib for h in hosts]))
    if timeline.purge is not None:
        for name in ("live", "every"):
            trackers: list[Tracker] = [getattr(h, name) for h in hosts]
            w.put(f"{p}host.{name}.newest", [t.newest for t in trackers])
            w.put(f"{p}host.{name}.newest_day", [t.newest_day.toordinal() for t in trackers])
            w.put(f"{p}host.{name}.kept", [t.kept for t in trackers])
            w.ragged(
                f"{p}host.{name}.run",
                [[v for s, d in t.run for v in (s, d.toordinal())] for t in trackers],
            )

    w.texts(f"{p}other.key", other_keys)
    seen_lists(f"{p}other.latest", [o.latest.values() for o in others])
    seen_lists(f"{p}other.snap", [o.snap.values() for o in others])
    w.put(f"{p}other.contrib", contributions([o.contrib for o in others]))

    w.put(f"{p}pending.seen", [rows[x.seen.seq] for x in pendings])
    w.put(f"{p}pending.flags", [x.host.flags for x in pendings])
    w.put(f"{p}pending.host", [host_number[x.ip_key] for x in pendings])
    w.ragged_texts(f"{p}pending.candidates", [x.candidates for x in pendings])

    named = [
        _named(h, s.fact.kind, timeline, host_number, other_number, pending_number)
        for h, s in entries
    ]
    w.put(f"{p}snap.kind", [kind for kind, _ in named])
    w.put(f"{p}snap.entity", [number for _, number in named])
    w.put(f"{p}snap.seen", [rows[s.seq] for _, s in entries])

    nodes = list(timeline.heartbeats.nodes.items())
    w.texts(f"{p}beat.key", [key for key, _ in nodes])
    beats = [beat for _, node in nodes for beat in node]
    w.put(f"{p}beat.n", [len(node) for _, node in nodes])
    w.put(f"{p}beat.at", [_us(at) for at, _, _, _ in beats])
    w.put(f"{p}beat.path", _numbered(w.paths, [path for _, path, _, _ in beats]))
    w.put(f"{p}beat.line", [line for _, _, line, _ in beats])
    w.put(f"{p}beat.fact", _numbered(w.facts, [fact for _, _, _, fact in beats]))

    chains = list(timeline.scans.chains.items())
    w.texts(f"{p}scan.key", [key for key, _ in chains])
    w.put(f"{p}scan.last", [-1 if c.last is None else _us(c.last) for _, c in chains])
    w.put(f"{p}scan.settled", [-1 if c.settled is None else _us(c.settled) for _, c in chains])
    scans = [scan for _, c in chains for scan in c.rows]
    w.put(f"{p}scan.n", [len(c.rows) for _, c in chains])
    w.put(f"{p}scan.at", [_us(at) for at, _, _, _, _ in scans])
    w.put(f"{p}scan.path", _numbered(w.paths, [path for _, path, _, _, _ in scans]))
    w.put(f"{p}scan.line", [line for _, _, line, _, _ in scans])
    w.put(f"{p}scan.counts", [int(counts) for _, _, _, counts, _ in scans])
    w.put(f"{p}scan.day", [day.toordinal() for _, _, _, _, day in scans])

    w.texts(f"{p}flex.key", list(timeline.flexscan))
    w.put(f"{p}flex.day", [d.toordinal() for d in timeline.flexscan.values()])

    wakeups = list(timeline.wakeups.items())
    w.put(f"{p}wake.day", [d.toordinal() for d, _ in wakeups])
    w.ragged(
        f"{p}wake.hosts",
        [
            sorted(
                {
                    host_number[timeline.entity(h)]
                    for h in due.hosts
                    if timeline.entity(h) in host_number
                }
            )
            for _, due in wakeups
        ],
    )
    w.ragged(
        f"{p}wake.others",
        [sorted(other_number[k] for k in due.others if k in other_number) for _, due in wakeups],
    )
    return {
        "start": timeline.start.isoformat(),
        "codes": list(timeline.codes),
        "day": timeline.day.isoformat() if timeline.day else None,  # None: not started
        "seq": timeline.seq,
        "file_days": {s: [d.isoformat() for d in days] for s, days in timeline.file_days.items()},
        "in_force": {s: d.isoformat() for s, d in timeline.in_force.items()},
        "snapshots": [[source, day.isoformat(), len(rows_)] for (source, day), rows_ in snapshots],
    }


def _named(
    handle: str | Pending,
    kind: Kind,
    timeline: Timeline,
    hosts: dict[str, int],
    others: dict[str, int],
    pendings: dict[int, int],
) -> tuple[int, int]:
    """What a snapshot entry names: (kind, position)."""
    if isinstance(handle, Pending):
        return _PENDING, pendings[id(handle)]
    if kind is Kind.HOST:
        return _HOST, hosts[timeline.entity(handle)]
    return _OTHER, others[handle]


# -- decoding -------------------------------------------------------------------------------


class _Reader:
    def __init__(self, header: dict[str, Any], body: memoryview) -> None:
        self.facts = [_fact(values) for values in header["facts"]]
        self.paths = [sys.intern(path) for path in header["paths"]]
        size = header["text"]
        self.text = bytes(body[:size]).decode("utf-8", "surrogateescape")
        self.text_at: dict[str, int] = header["texts"]
        self.columns: dict[str, array[int]] = {}
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

    def col(self, name: str) -> array[int]:
        return self.columns[name]

    def zip(self, prefix: str, *names: str) -> Iterator[tuple[int, ...]]:
        """Columns ``prefix + name`` side by side."""
        return zip(*(self.columns[prefix + name] for name in names), strict=True)

    def texts(self, name: str) -> list[str]:
        text = self.text
        ends = list(accumulate(self.columns[name], initial=self.text_at[name]))
        return [text[a:b] for a, b in pairwise(ends)]

    def lists(self, name: str, values: Sequence[Any]) -> list[Sequence[Any]]:
        """``values`` cut into lists by the length column ``name``."""
        ends = list(accumulate(self.columns[name], initial=0))
        return [values[a:b] for a, b in pairwise(ends)]

    def ragged(self, name: str) -> list[Sequence[int]]:
        return self.lists(f"{name}.n", self.columns[f"{name}.v"])

    def ragged_texts(self, name: str) -> list[Sequence[str]]:
        return self.lists(f"{name}.n", self.texts(f"{name}.v"))

    def by_slot(self, name: str, seens: list[Seen]) -> list[dict[str, Seen]]:
        """Lists of rows as dictionaries by slot."""
        counts = self.columns[f"{name}.n"]
        rows = [seens[i] for i in self.columns[f"{name}.v"]]
        if not rows:
            return [{} for _ in counts]
        if len(rows) == len(counts) and min(counts) == 1:  # one row each
            return [{row.fact.slot: row} for row in rows]
        return [{row.fact.slot: row for row in group} for group in self.lists(f"{name}.n", rows)]


def _fact(values: list[Any]) -> Fact:
    values = list(values)
    values[2] = Kind(values[2])
    values[7] = frozenset(values[7])
    values[13] = date.fromisoformat(values[13]) if values[13] else None
    return intern_fact(*values)


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
    facts, paths, day_of = r.facts, r.paths, date.fromordinal
    ordinals = r.col(f"{p}seen.day")
    days = {d: day_of(d) for d in set(ordinals)}
    seens = list(
        map(
            Seen._make,
            zip(
                r.col(f"{p}seen.seq"),
                map(days.__getitem__, ordinals),
                map(facts.__getitem__, r.col(f"{p}seen.fact")),
                map(paths.__getitem__, r.col(f"{p}seen.path")),
                r.col(f"{p}seen.line"),
                map(_pairs, r.ragged_texts(f"{p}seen.pairs")),
                strict=True,
            ),
        )
    )
    timeline.day = date.fromisoformat(data["day"]) if data["day"] else None
    timeline.seq = data["seq"]
    timeline.file_days = {
        s: [date.fromisoformat(d) for d in days_] for s, days_ in data["file_days"].items()
    }
    timeline.in_force = {s: date.fromisoformat(d) for s, d in data["in_force"].items()}

    keys = r.texts(f"{p}host.key")
    members = r.ragged_texts(f"{p}host.members")
    groups = timeline.uf.restore(keys, members, r.col(f"{p}host.best"))
    hosts = [
        Host.restored(
            flags,
            latest,
            snap,
            tuple(group[i] for i in clouds) if clouds else (),
            contribs[contrib],
        )
        for flags, latest, snap, clouds, group, contrib in zip(
            r.col(f"{p}host.flags"),
            r.by_slot(f"{p}host.latest", seens),
            r.by_slot(f"{p}host.snap", seens),
            r.ragged(f"{p}host.clouds"),
            groups,
            r.col(f"{p}host.contrib"),
            strict=True,
        )
    ]
    if timeline.purge is not None:
        for host, live, every in zip(
            hosts, _trackers(r, f"{p}host.live"), _trackers(r, f"{p}host.every"), strict=True
        ):
            host.live, host.every = live, every
    timeline.hosts = dict(zip(keys, hosts, strict=True))

    other_keys = r.texts(f"{p}other.key")
    others = [
        Other.restored(latest, snap, contribs[contrib])
        for latest, snap, contrib in zip(
            r.by_slot(f"{p}other.latest", seens),
            r.by_slot(f"{p}other.snap", seens),
            r.col(f"{p}other.contrib"),
            strict=True,
        )
    ]
    timeline.others = dict(zip(other_keys, others, strict=True))

    purge = timeline.purge is not None
    pendings: list[Pending] = []
    for row, flags, entity, candidates in zip(
        r.col(f"{p}pending.seen"),
        r.col(f"{p}pending.flags"),
        r.col(f"{p}pending.host"),
        r.ragged_texts(f"{p}pending.candidates"),
        strict=True,
    ):
        pending = Pending(seens[row], flags, tuple(candidates), keys[entity], purge)
        timeline.pending.setdefault(keys[entity], []).append(pending)
        pendings.append(pending)

    named = r.zip(p, "snap.kind", "snap.entity", "snap.seen")
    handles: dict[int, Sequence[str | Pending]] = {
        _HOST: keys,
        _OTHER: other_keys,
        _PENDING: pendings,
    }
    for source, day, count in data["snapshots"]:
        timeline.snapshots[(source, date.fromisoformat(day))] = [
            (handles[kind][number], seens[row])
            for kind, number, row in (next(named) for _ in range(count))
        ]

    node_keys = r.texts(f"{p}beat.key")
    beats: list[Beat] = [
        (_at(at), paths[path], line, facts[fact])
        for at, path, line, fact in r.zip(p, "beat.at", "beat.path", "beat.line", "beat.fact")
    ]
    timeline.heartbeats.nodes = {
        key: list(node) for key, node in zip(node_keys, r.lists(f"{p}beat.n", beats), strict=True)
    }
    chain_keys = r.texts(f"{p}scan.key")
    scans: list[Scan] = [
        (_at(at), paths[path], line, bool(counts), day_of(day))
        for at, path, line, counts, day in r.zip(
            p, "scan.at", "scan.path", "scan.line", "scan.counts", "scan.day"
        )
    ]
    for key, last, settled, rows in zip(
        chain_keys,
        r.col(f"{p}scan.last"),
        r.col(f"{p}scan.settled"),
        r.lists(f"{p}scan.n", scans),
        strict=True,
    ):
        timeline.scans.chains[key] = ScanChain.restored(
            None if last < 0 else _at(last), None if settled < 0 else _at(settled), list(rows)
        )
    timeline.flexscan = dict(
        zip(r.texts(f"{p}flex.key"), map(day_of, r.col(f"{p}flex.day")), strict=True)
    )
    for day, hosts_due, others_due in zip(
        r.col(f"{p}wake.day"), r.ragged(f"{p}wake.hosts"), r.ragged(f"{p}wake.others"), strict=True
    ):
        timeline.wakeups[day_of(day)] = Wakeups(
            {keys[i] for i in hosts_due}, {other_keys[i] for i in others_due}
        )
    census = timeline.census
    for held in chain((h.contrib for h in hosts), (o.contrib for o in others)):
        if held:
            census[held] = census.get(held, 0) + 1


def _pairs(flat: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(flat[::2], flat[1::2], strict=True)) if flat else ()


def _trackers(r: _Reader, name: str) -> list[Tracker]:
    return [
        Tracker.restored(
            newest,
            date.fromordinal(newest_day),
            kept,
            [(run[i], date.fromordinal(run[i + 1])) for i in range(0, len(run), 2)],
        )
        for newest, newest_day, kept, run in zip(
            r.col(f"{name}.newest"),
            r.col(f"{name}.newest_day"),
            r.col(f"{name}.kept"),
            r.ragged(f"{name}.run"),
            strict=True,
        )
    ]

"""A tenant's rows replayed day by day (spec sections 4 to 7), at the cost of what changed.

``Timeline`` takes each day's rows in (day, observed_at, path, line) order, correlates
host rows, and folds every row into its entity (``entities``); the rows themselves are
not kept. Each entity holds its current contribution to the products' daily totals (a
weight and the components it counts in). A day re-judges only the entities whose
contribution can have changed:

- entities with a row that day, or joined by correlation that day;
- entities in a snapshot that came into force or left it (a new file day, or the carry
  expiring: section 5);
- entities whose judgement turns with time alone, on the day it turns: purge ages
  (section 6), FIM event windows, FlexScan attribution (section 7) — each judgement
  names the next day it can turn (a wake-up).

Daily, hourly (CS) and scan (CIS) products read the day's rows and the recent histories
(``histories``). The same judgement of one entity (``count`` of the rules) serves the
totals and the explanation of a day (``explain``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction

from .catalog import (
    FLEXSCAN_ATTRIBUTION_DAYS,
    MARKS,
    PRODUCTS,
    CumulativeRule,
    DailyRule,
    Day,
    DayValue,
    HourlyNodeRule,
    ScanRule,
    StateRule,
)
from .config import Subscription
from .correlation import UnionFind
from .entities import NOTHING, Contribution, Host, Other, Pending
from .facts import Fact, Seen, fact_of, keep_latest
from .histories import Heartbeats, NodeSnapshots, ScanChains
from .observation import Kind, Observation, host_strong_ids, ip_key
from .paths import FileRef
from .plans import PlanDay, own_network_addresses

#: Files of a day older than this many days before the last one replayed are forgotten
#: (a summary recomputed for a past day reads at most two 90-day windows back).
FILE_DAYS_KEPT = 180
_MEMO_LIMIT = 1 << 16


@dataclass
class Wakeups:
    """The entities to judge again on one day."""

    hosts: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)


@dataclass
class Explained:
    """One product on the day last replayed, entity by entity (for explanations)."""

    counted: dict[str, str]  # entity -> why it counts
    excluded: list[tuple[str, str]]  # (entity, the rule that left it out)
    shown: dict[str, Sequence[Seen | Observation]]  # entity -> the rows behind it


class Timeline:
    """The replay of one tenant's rows from ``start`` on, for the products ``codes``."""

    def __init__(
        self,
        sub: Subscription,
        start: date,
        codes: Sequence[str],
        plans: bool = False,
        judge_all: bool = False,
    ) -> None:
        """``judge_all``: judge every entity every day, not only the ones that changed (the
        reference the incremental replay is held against)."""
        self.sub, self.start, self.codes, self.plans = sub, start, tuple(codes), plans
        self.judge_all = judge_all
        self.end = sub.end_date or date.max
        self.delta = frozenset(s for s, terms in sub.sources.items() if terms.mode == "delta")
        rules = sub.purge_rules
        self.purge = (rules.inactive_days, rules.terminated_days) if rules.enabled else None
        self.window_cs = timedelta(
            minutes=sub.container.heartbeat_minutes * sub.container.missed_heartbeats
        )
        self.window_cis = timedelta(hours=sub.image_scan_dedupe_hours)
        caps = sub.plan_caps() if plans else {}
        self.count_addresses = "ip_addresses" in caps
        self.count_web_apps = "web_apps" in caps
        self._rules()
        # the state
        self.day: date | None = None  # the last day replayed
        self.seq = 0
        self.file_days: dict[str, list[date]] = {}
        self.uf = UnionFind()
        self.hosts: dict[str, Host] = {}  # by union-find root, or ip: key
        self.pending: dict[str, list[Pending]] = {}  # by the ip: key they count under
        self.others: dict[str, Other] = {}
        self.snapshots: dict[tuple[str, date], list[tuple[str | Pending, Seen]]] = {}
        self.in_force: dict[str, date] = {}  # snapshot source -> its snapshot's day
        self.heartbeats = Heartbeats()
        self.scans = ScanChains()
        self.flexscan: dict[str, date] = {}  # cloud key -> the last day FlexScan saw it
        self.wakeups: dict[date, Wakeups] = {}
        self.census: dict[Contribution, int] = {}  # contribution -> entities making it
        self.queued: dict[date, list[Observation]] = {}  # rows of days not replayed yet
        self.today: list[Observation] = []  # rows of the day being replayed
        self._memo: dict[tuple[object, ...], Contribution] = {}
        self._mark_cache: dict[tuple[object, ...], int] = {}

    def _rules(self) -> None:
        products = [(code, PRODUCTS[code].rule) for code in self.codes]
        self.state_rules = [(c, r) for c, r in products if isinstance(r, StateRule)]
        self.host_rules = [(c, r) for c, r in self.state_rules if Kind.HOST in r.kinds]
        self.other_rules = [(c, r) for c, r in self.state_rules if r.kinds - {Kind.HOST}]
        self.cumulative = [(c, r) for c, r in products if isinstance(r, CumulativeRule)]
        self.daily = [(c, r) for c, r in products if isinstance(r, DailyRule)]
        self.hourly = [(c, r) for c, r in products if isinstance(r, HourlyNodeRule)]
        self.scan = [(c, r) for c, r in products if isinstance(r, ScanRule)]
        self.needs_nodes = bool(self.hourly) or any(r.cs_nodes for _, r in self.daily)
        self.needs_flexscan = any(r.flexscan for _, r in self.cumulative)
        self.fim = "FIM" in self.codes

    # -- input ----------------------------------------------------------------------------

    def add(self, files: Iterable[FileRef], observations: Iterable[Observation]) -> int:
        """Queue files and rows; those before ``start``, after ``end_date`` or of days
        already replayed are left out. Returns how many rows came too late to add."""
        first = self.start if self.day is None else self.day + timedelta(days=1)
        for ref in files:
            days = self.file_days.setdefault(ref.source, [])
            if first <= ref.day <= self.end and ref.day not in days:
                bisect.insort(days, ref.day)
        late = 0
        for obs in observations:
            if first <= obs.day <= self.end:
                self.queued.setdefault(obs.day, []).append(obs)
            elif self.start <= obs.day < first:
                late += 1
        return late

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

    def covered_days(self, source: str) -> list[date]:
        return self.file_days.get(source, [])

    # -- replay -----------------------------------------------------------------------------

    def days(self, last: date) -> Iterator[date]:
        """Replay the days after the last one up to ``last``, yielding each (its rows are
        at hand until ``end_day``)."""
        day = self.start if self.day is None else self.day + timedelta(days=1)
        while day <= last:
            self.advance(day)
            yield day
            day += timedelta(days=1)

    def advance(self, day: date) -> None:
        """Replay ``day`` (days come in order): fold its rows, move the snapshots in
        force, and judge again every entity whose contribution can have changed."""
        assert self.day is None or day > self.day, "days are replayed in order"
        self.day = day
        rows = self._ordered(self.queued.pop(day, []))
        hosts, others = self._wake(day)
        joined = self._correlate(rows, hosts)
        self._fold(day, rows, hosts, others)
        self._move_snapshots(day, hosts, others)
        if joined and self.pending:
            self._settle_pending(hosts)
        if self.judge_all:
            hosts, others = set(self.hosts), set(self.others)
        judged = Day(day, self.sub.fim_event_window_days)
        for handle in hosts:
            self._judge_host(self.entity(handle), judged)
        for key in others:
            self._judge_other(key, judged)
        self.today = rows  # the day's products read them until ``end_day``

    def _ordered(self, rows: list[Observation]) -> list[Observation]:
        """The day's rows in (observed_at, path, line) order, numbered; a row delivered
        twice is taken once."""
        rows.sort(key=lambda o: (o.observed_at, o.path, o.line))
        out: list[Observation] = []
        for obs in rows:
            if out and out[-1].line == obs.line and out[-1].path == obs.path:
                continue
            self.seq += 1
            obs.seq = self.seq
            out.append(obs)
        return out

    def _wake(self, day: date) -> tuple[set[str], set[str]]:
        due = self.wakeups.pop(day, None)
        return (set(due.hosts), set(due.others)) if due else (set(), set())

    def _correlate(self, rows: list[Observation], dirty: set[str]) -> bool:
        """Link the day's strong identifiers; merge the entities they join."""
        joined = False
        for obs in rows:
            if obs.kind is not Kind.HOST or obs.key is None:
                continue
            for absorbed, into in self.uf.link((obs.key, *host_strong_ids(obs)[1:])):
                joined = True
                self._join(absorbed, into)
                dirty.add(into)
        return joined

    def _join(self, absorbed: str, into: str) -> None:
        gone = self.hosts.pop(absorbed, None)
        if gone is None:
            return
        self._replace_contribution(gone, NOTHING)
        held = self.hosts.get(into)
        if held is None:
            self.hosts[into] = gone
        else:
            held.merge(gone)

    def _holders(self, rows: list[Observation]) -> dict[tuple[str, str], list[str]]:
        """The day's (network, ip) pairs that its IP-only host rows carry, with the strong
        identifiers of the rows holding them that day."""
        needed = {p for o in rows if o.kind is Kind.HOST and o.key is None for p in o.ip_pairs}
        holders: dict[tuple[str, str], list[str]] = {}
        if needed:
            for obs in rows:
                if obs.kind is Kind.HOST and obs.key is not None:
                    for pair in obs.ip_pairs:
                        if pair in needed:
                            holders.setdefault(pair, []).append(obs.key)
        return holders

    def _fold(self, day: date, rows: list[Observation], hosts: set[str], others: set[str]) -> None:
        holders = self._holders(rows)
        purge, delta, uf = self.purge is not None, self.delta, self.uf
        for obs in rows:
            fact = fact_of(obs)
            seen = Seen(obs.seq, day, fact, obs.path, obs.line, self._pairs(obs))
            handle: str | Pending
            if obs.kind is Kind.HOST:
                flags = self._flags(obs)
                if obs.key is not None:
                    handle = root = uf.find(obs.key)
                    host = self._host(root)
                    host.fold(seen, flags)
                    if obs.cloud_provider and obs.cloud_resource_id:
                        ident = f"cloud:{obs.cloud_provider}/{obs.cloud_resource_id}"
                        host.add_cloud(ident)
                        if ident in self.others:
                            others.add(ident)
                else:
                    root, handle = self._attach(obs, seen, flags, holders, purge)
                hosts.add(root)
            else:
                handle = key = obs.key or ""
                other = self.others.get(key) or self.others.setdefault(key, Other())
                if obs.source in delta:
                    keep_latest(other.latest, seen)
                others.add(key)
                self._history(obs, fact, day, hosts)
            if obs.source not in delta:
                self.snapshots.setdefault((obs.source, day), []).append((handle, seen))

    def _attach(
        self,
        obs: Observation,
        seen: Seen,
        flags: int,
        holders: dict[tuple[str, str], list[str]],
        purge: bool,
    ) -> tuple[str, str | Pending]:
        """Fold an IP-only host row into the one entity holding one of its pairs that day;
        otherwise it counts under its ``ip:`` key, for good when no entity held any.
        Returns the entity and what the row's snapshot entry names."""
        candidates = sorted({ident for pair in obs.ip_pairs for ident in holders.get(pair, ())})
        roots = {self.uf.find(ident) for ident in candidates}
        if len(roots) == 1:
            root = roots.pop()
            self._host(root).fold(seen, flags)
            return root, root
        key = ip_key(obs.network_id, min(obs.ips))
        host = self._host(key)
        if not candidates:
            host.fold(seen, flags)
            return key, key
        pending = Pending(seen, flags, tuple(candidates), key, purge)
        self.pending.setdefault(key, []).append(pending)
        return key, pending

    def _host(self, key: str) -> Host:
        host = self.hosts.get(key)
        if host is None:
            host = self.hosts[key] = Host(self.purge is not None)
        return host

    def _pairs(self, obs: Observation) -> tuple[tuple[str, str], ...]:
        if self.count_addresses and obs.kind is Kind.HOST and obs.ips:
            return obs.ip_pairs
        return ()

    def _history(self, obs: Observation, fact: Fact, day: date, hosts: set[str]) -> None:
        key = obs.key or ""
        if obs.kind is Kind.NODE:
            if self.needs_nodes and obs.source == "container_sensor":
                self.heartbeats.add(key, (obs.observed_at, obs.path, obs.line, fact))
        elif obs.kind is Kind.IMAGE_SCAN:
            if self.scan:
                scan = obs.source == "image_scanner" and obs.pipeline_stage != "runtime"
                self.scans.add(
                    key, (obs.observed_at, obs.path, obs.line, scan and not obs.removed, day)
                )
        elif obs.kind is Kind.CLOUD:
            if obs.source == "flexscan" and self.needs_flexscan:
                self.flexscan[key] = day
            if key in self.uf:  # a host carries it: ETM and CWP_AGENT judge them as one
                hosts.add(key)

    def _flags(self, obs: Observation) -> int:
        """The cumulative marks an observation sets (cached: they depend on few fields)."""
        shape = (obs.source, obs.agent_id is None, obs.modules, obs.asset_type, obs.cloud_provider)
        flags = self._mark_cache.get(shape)
        if flags is None:
            flags = sum(1 << bit for bit, mark in enumerate(MARKS) if mark(obs))
            self._mark_cache[shape] = flags
        return flags

    def entity(self, handle: str) -> str:
        """The entity a host handle (an identifier or an ip: key) names now."""
        return self.uf.find(handle) if handle in self.uf else handle

    def _move_snapshots(self, day: date, hosts: set[str], others: set[str]) -> None:
        """Take the snapshot rows that leave force out of their entities' states, and put
        the ones that come into force in."""
        for source in self.file_days:
            if source in self.delta:
                continue
            new, old = self.snapshot_day(source, day), self.in_force.get(source)
            if new == old:
                continue
            for handle, seen in self.snapshots.get((source, old), ()) if old else ():
                if seen.fact.kind is Kind.HOST:
                    key = handle.ip_key if isinstance(handle, Pending) else self.entity(handle)
                    if not isinstance(handle, Pending):
                        self.hosts[key].snap.pop(seen.fact.slot, None)
                    hosts.add(key)
                else:
                    self._other_snap(handle, seen, hosts, others, put=False)
            for handle, seen in self.snapshots.get((source, new), ()) if new else ():
                if seen.fact.kind is Kind.HOST:
                    key = handle.ip_key if isinstance(handle, Pending) else self.entity(handle)
                    if not isinstance(handle, Pending):
                        keep_latest(self.hosts[key].snap, seen)
                    hosts.add(key)
                else:
                    self._other_snap(handle, seen, hosts, others, put=True)
            if new is None:
                del self.in_force[source]
            else:
                self.in_force[source] = new

    def _other_snap(
        self, key: str | Pending, seen: Seen, hosts: set[str], others: set[str], put: bool
    ) -> None:
        assert isinstance(key, str)
        other = self.others.get(key)
        if other is None:
            return
        if put:
            keep_latest(other.snap, seen)
        else:
            other.snap.pop(seen.fact.slot, None)
        others.add(key)
        if key in self.uf:  # a cloud entity a host carries (ETM)
            hosts.add(key)

    def _settle_pending(self, hosts: set[str]) -> None:
        """IP-only rows whose day's holders correlation has since made one entity: they
        belong to it from now on."""
        for key, waiting in list(self.pending.items()):
            for pending in list(waiting):
                roots = {self.uf.find(ident) for ident in pending.candidates}
                if len(roots) != 1:
                    continue
                root = roots.pop()
                host = self._host(root)
                host.merge(pending.host)
                seen = pending.seen
                source = seen.fact.source
                rows = None if source in self.delta else self.snapshots.get((source, seen.day))
                if rows is not None:  # a snapshot no longer in force is not kept (compact)
                    at = next(i for i, (handle, _) in enumerate(rows) if handle is pending)
                    rows[at] = (root, seen)
                    if self.in_force.get(source) == seen.day:
                        keep_latest(host.snap, seen)
                waiting.remove(pending)
                hosts.update((root, key))
            if not waiting:
                del self.pending[key]

    # -- judging entities -------------------------------------------------------------------

    def _replace_contribution(self, entity: Host | Other, contrib: Contribution) -> None:
        held = entity.contrib
        if contrib is held:
            return
        census = self.census
        if held:
            left = census[held] - 1
            if left:
                census[held] = left
            else:
                del census[held]
        if contrib:
            census[contrib] = census.get(contrib, 0) + 1
        entity.contrib = contrib

    def totals(self) -> Amounts:
        """The day's totals: every contribution times the entities that make it."""
        totals: Amounts = {}
        for contrib, entities in self.census.items():
            for key, amount in contrib.entries:
                totals[key] = totals.get(key, 0) + amount * entities
        return totals

    def _effective(self, key: str) -> Host:
        """The host entity as judged: with the IP-only rows waiting under its key."""
        host = self.hosts[key]
        waiting = self.pending.get(key)
        if not waiting:
            return host
        view = host.copy()
        for pending in waiting:
            view.merge(pending.host)
            seen = pending.seen
            if self.in_force.get(seen.fact.source) == seen.day:  # a snapshot row in force
                keep_latest(view.snap, seen)
        return view

    def _states(self, host: Host) -> dict[str, Seen]:
        """An entity's states on the day, by slot: delta sources' latest rows, snapshot rows
        in force."""
        delta = self.delta
        states = {slot: s for slot, s in host.latest.items() if s.fact.source in delta}
        if host.snap:
            states.update(host.snap)
        return states if len(states) < 2 else dict(sorted(states.items()))

    def _cloud_states(self, host: Host) -> list[Seen]:
        """States of cloud entities the host carries the provider and resource id of."""
        extra: list[Seen] = []
        for ident in host.clouds:
            other = self.others.get(ident)
            if other is not None:
                extra.extend(other.states())
        return extra

    def _flexscan_until(self, host: Host, day: date) -> date | None:
        """While FlexScan's sightings attribute the host to CWP_FLEXSCAN: the day that
        ends; None when it is not attributed."""
        until: date | None = None
        for ident in host.clouds:
            seen = self.flexscan.get(ident)
            if seen is not None and (day - seen).days < FLEXSCAN_ATTRIBUTION_DAYS:
                end = seen + timedelta(days=FLEXSCAN_ATTRIBUTION_DAYS)
                until = end if until is None else max(until, end)
        return until

    def _fim_turns(self, states: Iterable[Seen], day: date) -> list[date]:
        """Days after ``day`` on which a FIM event window opens or closes for a state."""
        turns = []
        window = self.sub.fim_event_window_days
        for seen in states:
            event = seen.fact.fim_day
            if event is not None:
                turns += [d for d in (event, event + timedelta(days=window)) if d > day]
        return turns

    def _purged(self, host: Host, day: date) -> tuple[bool, date | None]:
        tracker = host.purge_tracker()
        if tracker is None or self.purge is None:
            return False, None
        inactive, terminated = self.purge
        return (
            tracker.purged(day, inactive, terminated),
            tracker.changes_on(day, inactive, terminated),
        )

    def _judge_host(self, key: str, day: Day) -> None:
        stored = self.hosts.get(key)
        if stored is None:
            return
        host = self._effective(key)
        contrib, wake = self._host_contribution(host, day) if host.latest else (NOTHING, None)
        self._replace_contribution(stored, contrib)
        if wake is not None:
            self.wakeups.setdefault(wake, Wakeups()).hosts.add(key)

    def _host_contribution(self, host: Host, day: Day) -> tuple[Contribution, date | None]:
        purged, wake = self._purged(host, day.day)
        if purged:
            return NOTHING, wake
        states = self._states(host)
        extra = self._cloud_states(host) if host.clouds else []
        excluded = False
        if self.needs_flexscan and host.clouds:
            until = self._flexscan_until(host, day.day)
            if until is not None:
                excluded = True
                wake = until if wake is None else min(wake, until)
        timed = self.fim and any(s.fact.fim_day is not None for s in states.values())
        if timed:
            turns = self._fim_turns(states.values(), day.day)
            if turns:
                wake = min(turns) if wake is None else min(wake, *turns)
        ghost = host.ghost() if self.cumulative else False
        memo = (
            tuple(s.fact for s in states.values()),
            tuple(s.fact for s in extra),
            host.flags,
            ghost,
            excluded,
            day.day if timed else None,
        )
        contrib = self._memo.get(memo)
        if contrib is None:
            contrib = self._count_host(states, extra, host.flags, ghost, excluded, day)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[memo] = contrib
        if self.count_addresses:
            addresses = self._addresses(states.values())
            if addresses:
                contrib = Contribution(contrib.entries + addresses)
        return contrib, wake

    def _count_host(
        self,
        states: dict[str, Seen],
        extra: list[Seen],
        flags: int,
        ghost: bool,
        excluded: bool,
        day: Day,
    ) -> Contribution:
        amounts: Amounts = {}
        for code, rule in self.host_rules:
            if rule.slot is not None:
                state = states.get(rule.slot)
                candidates: list[Seen] = [state] if state is not None else []
            elif rule.merge_cloud and extra:
                candidates = [*states.values(), *extra]
            else:
                candidates = list(states.values())
            _add_counted(amounts, code, rule.count(candidates, day))
        for code, cumulative in self.cumulative:
            if cumulative.flexscan and excluded:
                continue
            label = cumulative.component(flags)
            if label is not None:
                _add(amounts, (code, label), 1)
                _add(amounts, (code, ""), 0 if ghost else 1)
                if ghost:
                    _add(amounts, (code, cumulative.ghosts), 1)
        return _contribution(amounts)

    def _addresses(self, states: Iterable[Seen]) -> tuple[tuple[tuple[str, ...], int], ...]:
        """The plan's address count: the (network, ip) pairs of active scanner and cloud
        agent states."""
        pairs = {
            pair
            for seen in states
            if seen.fact.source in ("scanner", "cloud_agent") and seen.fact.active
            for pair in seen.pairs
        }
        return tuple((("ip", *pair), 1) for pair in sorted(pairs))

    def _judge_other(self, key: str, day: Day) -> None:
        other = self.others.get(key)
        if other is None:
            return
        states = other.states()
        if not states:
            self._replace_contribution(other, NOTHING)
            del self.others[key]
            return
        in_uf = key in self.uf
        timed = self.fim and any(s.fact.fim_day is not None for s in states)
        memo = ("other", tuple(s.fact for s in states), in_uf, day.day if timed else None)
        contrib = self._memo.get(memo)
        if contrib is None:
            amounts: Amounts = {}
            kind = states[0].fact.kind
            for code, rule in self.other_rules:
                if kind in rule.kinds and not (rule.merge_cloud and in_uf):
                    _add_counted(amounts, code, rule.count(states, day))
            if self.count_web_apps and _web_app(states):
                _add(amounts, ("plan", "web_apps"), 1)
            contrib = _contribution(amounts)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[memo] = contrib
        self._replace_contribution(other, contrib)
        turns = self._fim_turns(states, day.day) if timed else []
        if turns:
            self.wakeups.setdefault(min(turns), Wakeups()).others.add(key)

    # -- the day's numbers ------------------------------------------------------------------

    def values(self, detail: bool = False) -> dict[str, DayValue]:
        """Every product's value on the day last replayed."""
        totals, out = self.totals(), {}
        for code, rule in self.state_rules:
            out[code] = DayValue(
                Fraction(totals.get((code, ""), 0)),
                {name: Fraction(totals.get((code, name), 0)) for name in rule.components},
                self.explain(code).counted if detail else None,
            )
        for code, cumulative in self.cumulative:
            out[code] = DayValue(
                Fraction(totals.get((code, ""), 0)),
                {name: Fraction(totals.get((code, name), 0)) for name in cumulative.names()},
                self.explain(code).counted if detail else None,
            )
        rows = self.today
        nodes = self.node_snapshots() if self.needs_nodes else None
        for code, daily in self.daily:
            out[code] = daily.evaluate(rows, nodes, detail)
        for code, hourly in self.hourly:
            assert nodes is not None
            out[code] = hourly.evaluate(nodes, detail)
        for code, scan in self.scan:
            out[code] = scan.evaluate(self.scanned(), detail)
        return out

    def node_snapshots(self) -> NodeSnapshots:
        assert self.day is not None
        return self.heartbeats.snapshots(self.day, self.window_cs)

    def scanned(self) -> dict[str, str]:
        """CIS scans counted on the day (``path:line`` -> digest)."""
        assert self.day is not None
        digests = {o.key for o in self.today if o.kind is Kind.IMAGE_SCAN and o.key}
        return self.scans.counted(self.day, digests, self.window_cis)

    def plan_day(self) -> PlanDay:
        """The plan's measures on the day last replayed (section 11)."""
        counts: dict[str, int] = {}
        totals = self.totals()
        if self.count_addresses:
            counts["ip_addresses"] = sum(1 for key in totals if key[0] == "ip" and totals[key])
        if self.count_web_apps:
            counts["web_apps"] = int(totals.get(("plan", "web_apps"), 0))
        return PlanDay(counts, own_network_addresses(self.sub, self.today))

    def end_day(self) -> None:
        """Forget what no later day can read: the day's rows, histories past their
        windows."""
        assert self.day is not None
        self.today = []
        if self.needs_nodes:
            self.heartbeats.trim(self.day, self.window_cs)
        if self.scan:
            self.scans.trim(self.day, self.window_cis)

    def compact(self) -> None:
        """Drop what no later day can need: snapshot rows not in force, old file days,
        FlexScan sightings past the attribution window, the judgement cache."""
        day = self.day
        assert day is not None
        for source, snap_day in list(self.snapshots):
            if self.in_force.get(source) != snap_day:
                del self.snapshots[(source, snap_day)]
        oldest = day - timedelta(days=FILE_DAYS_KEPT)
        for days in self.file_days.values():
            days[:] = [d for d in days if d >= oldest or d == days[-1]]
        horizon = day - timedelta(days=FLEXSCAN_ATTRIBUTION_DAYS)
        self.flexscan = {k: d for k, d in self.flexscan.items() if d > horizon}
        self._memo.clear()

    # -- explanations ------------------------------------------------------------------------

    def canonical(self, key: str) -> str:
        return self.uf.canonical(key) if key in self.uf else key

    def explain(self, code: str) -> Explained:
        """One product on the day being replayed (before ``end_day``), entity by entity:
        what counts and why, what was left out and why."""
        assert self.day is not None
        rule = PRODUCTS[code].rule
        day = Day(self.day, self.sub.fim_event_window_days)
        result = Explained({}, [], {})
        if isinstance(rule, StateRule | CumulativeRule):
            for key in self.hosts:
                host = self._effective(key)
                if host.latest and (isinstance(rule, CumulativeRule) or Kind.HOST in rule.kinds):
                    self._explain_host(code, rule, self.canonical(key), host, day, result)
            if isinstance(rule, StateRule):
                for key, other in self.others.items():
                    self._explain_other(rule, key, other, day, result)
            return result
        value = self.values(detail=True)[code]
        result.counted = dict(value.counted or {})
        for obs in self.today:
            entity = next(
                (e for e in (obs.key, f"{obs.path}:{obs.line}") if e in result.counted), None
            )
            if entity is not None:
                result.shown[entity] = [*result.shown.get(entity, ()), obs]
            elif obs.key:
                reason = "removed status" if obs.removed else "not eligible for " + code
                result.excluded.append((obs.key, f"{reason}: {_describe([obs])}"))
        return result

    def _explain_host(
        self,
        code: str,
        rule: StateRule | CumulativeRule,
        entity: str,
        host: Host,
        day: Day,
        out: Explained,
    ) -> None:
        if self._purged(host, day.day)[0]:
            out.excluded.append((entity, "purged by the purge rules"))
            return
        states = self._states(host)
        if isinstance(rule, CumulativeRule):
            label = rule.component(host.flags)
            attributed = rule.flexscan and self._flexscan_until(host, day.day) is not None
            if label is None:
                out.excluded.append((entity, "never observed as the product's components require"))
            elif attributed:
                out.excluded.append((entity, f"attributed to CWP_FLEXSCAN ({code} excludes it)"))
            else:
                ghost = host.ghost()
                out.counted[entity] = label + (f" and {rule.ghosts} (ghost)" if ghost else "")
                out.shown[entity] = list(host.latest.values())
            return
        if rule.slot is not None:
            state = states.get(rule.slot)
            candidates = [state] if state is not None else []
        elif rule.merge_cloud:
            candidates = [*states.values(), *self._cloud_states(host)]
        else:
            candidates = list(states.values())
        counted = rule.count(candidates, day)
        if counted is not None:
            out.counted[entity] = counted[2].where()
            out.shown[entity] = list(states.values())
        elif not states:
            out.excluded.append((entity, "no state on the day (in no snapshot in force)"))
        else:
            out.excluded.append((entity, "no passing state: " + _describe(states.values())))

    def _explain_other(
        self, rule: StateRule, key: str, other: Other, day: Day, out: Explained
    ) -> None:
        states = other.states()
        if not states or states[0].fact.kind not in rule.kinds:
            return
        if rule.merge_cloud and key in self.uf:
            return
        counted = rule.count(states, day)
        if counted is not None:
            out.counted[key] = counted[2].where()
            out.shown[key] = states
        else:
            out.excluded.append((key, "no passing state: " + _describe(states)))


Amounts = dict[tuple[str, ...], Fraction | int]


def _add(amounts: Amounts, key: tuple[str, ...], amount: Fraction | int) -> None:
    amounts[key] = amounts.get(key, 0) + amount


def _add_counted(
    amounts: Amounts,
    code: str,
    counted: tuple[Fraction, list[str], Seen] | None,
) -> None:
    if counted is None:
        return
    weight, labels, _ = counted
    _add(amounts, (code, ""), int(weight) if weight.denominator == 1 else weight)
    for label in labels:
        _add(amounts, (code, label), 1)


def _contribution(amounts: Amounts) -> Contribution:
    entries = tuple(sorted((k, v) for k, v in amounts.items() if v))
    return Contribution(entries) if entries else NOTHING


def _web_app(states: Sequence[Seen]) -> bool:
    return any(
        s.fact.kind is Kind.WEB_APP and s.fact.source in ("tas", "was") and s.fact.active
        for s in states
    )


def _describe(rows: Iterable[Seen | Observation]) -> str:
    parts = []
    for row in rows:
        fact = row.fact if isinstance(row, Seen) else row
        parts.append(
            f"{fact.source} {fact.asset_type} {fact.status}"
            + (f" modules={','.join(sorted(fact.modules))}" if fact.modules else "")
        )
    return "; ".join(parts)

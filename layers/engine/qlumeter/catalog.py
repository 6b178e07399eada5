"""The 24 products as declarative definitions (spec section 7).

Each product is one ``Product``: its window, its coverage source (avg90) and a rule.
Five rule shapes cover every product: ``StateRule`` (entity states on the day),
``CumulativeRule`` (components seen since the start, less ghosts), ``DailyRule``
(distinct entities observed that day), ``HourlyNodeRule`` (CS heartbeats) and
``ScanRule`` (CIS pipeline de-duplication).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from fractions import Fraction
from typing import Protocol

from .numbers import ONE, ZERO
from .observation import Kind, Observation
from .timeline import DayView, Mark
from .vocabulary import INVENTORY_ONLY_SOURCES

CWP_PROVIDERS = frozenset({"aws", "azure", "gcp", "oci"})
CDR_PROVIDERS = frozenset({"aws", "azure", "gcp"})
ELIM_MODULES = ("pm", "isl", "mtg")


@dataclass
class DayValue:
    """A product's daily value and the named counts behind it."""

    value: Fraction
    components: dict[str, Fraction] = field(default_factory=dict)
    counted: dict[str, str] | None = None  # entity -> why it counts (explain only)


class Rule(Protocol):
    def evaluate(self, view: DayView, detail: bool) -> DayValue: ...


def _label_counts(labels: Counter[str], names: Iterable[str]) -> dict[str, Fraction]:
    return {name: Fraction(labels.get(name, 0)) for name in names}


# -- state ----------------------------------------------------------------------------------


StateTest = Callable[[Observation, DayView], bool]


@dataclass(frozen=True)
class StateRule:
    """Counts entities with at least one state on the day that passes ``test``.

    The entity's weight is the largest ``weight`` of its passing states (1 when None);
    ``labels`` names the components it counts in (``components`` lists them all, zeros
    included). ``slot``: only that source's state can pass. ``merge_cloud``: a cloud
    entity whose provider and resource id a host-like entity carries is that entity (ETM).
    """

    kinds: frozenset[Kind]
    test: StateTest
    weight: Callable[[Observation], Fraction] | None = None
    labels: Callable[[Observation], Iterable[str]] = lambda obs: ()
    components: tuple[str, ...] = ()
    slot: str | None = None
    merge_cloud: bool = False

    def evaluate(self, view: DayView, detail: bool) -> DayValue:
        weights, labels = Counter[Fraction](), Counter[str]()
        counted: dict[str, str] | None = {} if detail else None
        merged: dict[str, list[Observation]] = {}
        if self.merge_cloud:
            for key, states in view.others.items():
                if key in view.uf:
                    merged.setdefault(view.uf.find(key), []).extend(states.values())
        test, weight, slot, ones = self.test, self.weight, self.slot, 0

        plain = weight is None and not self.components and counted is None

        def count(entity: str, states: Iterable[Observation]) -> None:
            nonlocal ones
            if plain:  # the common case: is any state passing
                ones += any(test(obs, view) for obs in states)
                return
            passing = [obs for obs in states if test(obs, view)]
            if not passing:
                return
            best = passing[0]
            if weight is None:
                ones += 1
            else:
                best = max(passing, key=weight)
                weights[weight(best)] += 1
            if self.components:
                labels.update({label for obs in passing for label in self.labels(obs)})
            if counted is not None:
                counted[entity] = f"{best.source} state of {best.day} ({best.path}:{best.line})"

        if Kind.HOST in self.kinds and plain and not merged:
            ones += self._plain_hosts(view)  # the hot path: no weights, labels or detail
        elif Kind.HOST in self.kinds:
            for root, hd in view.hosts.items():
                if hd.purged:
                    continue
                if slot is not None:
                    state = hd.states.get(slot)
                    if state is not None:
                        count(hd.canonical, (state,))
                    continue
                extra = merged.get(root)
                count(hd.canonical, [*hd.states.values(), *extra] if extra else hd.states.values())
        for key, states in view.others.items():
            kind = next(iter(states.values())).kind
            if kind in self.kinds and not (self.merge_cloud and key in view.uf):
                count(key, states.values())
        total = ones + sum((w * n for w, n in weights.items()), ZERO)
        return DayValue(Fraction(total), _label_counts(labels, self.components), counted)

    def _plain_hosts(self, view: DayView) -> int:
        """Host entities with a passing state, counted without building anything."""
        test, slot, total = self.test, self.slot, 0
        for hd in view.hosts.values():
            if hd.purged:
                continue
            if slot is not None:
                state = hd.states.get(slot)
                total += state is not None and test(state, view)
                continue
            for obs in hd.states.values():
                if test(obs, view):
                    total += 1
                    break
        return total


def _from(source: str, module: str | None = None) -> StateTest:
    """Active state from ``source`` (listing ``module`` when given)."""
    return lambda obs, view: (
        obs.source == source and obs.active and (module is None or module in obs.modules)
    )


def _fim(obs: Observation, view: DayView) -> bool:
    if not obs.active or "fim" not in obs.modules:
        return False
    if obs.kind is Kind.HOST and obs.source == "cloud_agent":
        return True
    if (obs.kind is Kind.HOST and obs.source == "scanner") or (
        obs.kind is Kind.NODE and obs.source == "container_sensor"
    ):
        event = obs.last_fim_event_at
        window = view.timeline.sub.fim_event_window_days
        return event is not None and 0 <= (view.day - event.date()).days <= window - 1
    return False


# -- cumulative -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CumulativeRule:
    """Components of host-like entities marked since the start, less the ghosts.

    Each entity lands in the first component whose mark it carries (A2 is "not in A1",
    B "not in A1 or A2"); ``ghosts`` names the deduction; ``excluded`` leaves entities out.
    """

    components: tuple[tuple[str, int], ...]  # (label, mark bit)
    ghosts: str
    excluded: Callable[[DayView], set[str]] = lambda view: set()

    def evaluate(self, view: DayView, detail: bool) -> DayValue:
        excluded = self.excluded(view)
        counts = Counter[str]()
        counted: dict[str, str] | None = {} if detail else None
        for root, hd in view.hosts.items():
            if hd.purged or not hd.flags or root in excluded:
                continue
            for label, bit in self.components:
                if hd.flags & (1 << bit):
                    counts[label] += 1
                    ghost = hd.ghost()
                    if ghost:
                        counts[self.ghosts] += 1
                    if counted is not None:
                        counted[hd.canonical] = label + (
                            f" and {self.ghosts} (ghost)" if ghost else ""
                        )
                    break
        value = Fraction(sum(counts[label] for label, _ in self.components) - counts[self.ghosts])
        names = [label for label, _ in self.components] + [self.ghosts]
        return DayValue(value, _label_counts(counts, names), counted)


# -- daily ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DailyRule:
    """Distinct entities observed on the day by a passing, not removed observation."""

    test: Callable[[Observation], bool]
    key: Callable[[Observation], str] = lambda obs: obs.key or ""
    weight: Callable[[Observation], Fraction] = lambda obs: ONE
    excluded: Callable[[DayView], Callable[[Observation], bool]] | None = None

    def evaluate(self, view: DayView, detail: bool) -> DayValue:
        skip = self.excluded(view) if self.excluded else None
        weights: dict[str, Fraction] = {}
        barred: set[str] = set()
        for obs in view.today:
            if obs.removed or not self.test(obs):
                continue
            key = self.key(obs)
            if skip is not None and skip(obs):
                barred.add(key)
                continue
            weights[key] = max(weights.get(key, ZERO), self.weight(obs))
        counted = {k: f"weight {w}" for k, w in weights.items() if k not in barred}
        value = sum((w for k, w in weights.items() if k not in barred), ZERO)
        return DayValue(value, {}, counted if detail else None)


def _cloud_workload(source: str, providers: frozenset[str]) -> Callable[[Observation], bool]:
    return lambda obs: (
        obs.source == source
        and obs.kind is Kind.CLOUD
        and obs.asset_type in ("virtual_machine", "serverless_function")
        and obs.cloud_provider in providers
    )


def _workload_weight(obs: Observation) -> Fraction:
    return ONE if obs.asset_type == "virtual_machine" else Fraction(1, 100)


# -- container security ---------------------------------------------------------------------


def cs_snapshots(view: DayView) -> tuple[Fraction, set[str], list[int]]:
    """CS hourly snapshots of the day: mean count, nodes counted in any hour, per hour."""
    sub = view.timeline.sub
    window = timedelta(minutes=sub.container.heartbeat_minutes * sub.container.missed_heartbeats)
    midnight = datetime.combine(view.day, time(0), tzinfo=UTC)
    hours = [midnight + timedelta(hours=h) for h in range(24)]
    per_hour = [0] * 24
    counted: set[str] = set()
    for key, history in view.timeline.histories.items():
        if not key.startswith("node:"):
            continue
        seen = [obs for obs in history if obs.source == "container_sensor" and obs.day <= view.day]
        if not seen or seen[-1].observed_at <= midnight - window:
            continue
        for h, at in enumerate(hours):
            i = bisect.bisect_right(seen, at, key=lambda o: o.observed_at)
            if i == 0:
                continue
            latest = seen[i - 1]
            if (
                latest.observed_at > at - window
                and latest.active
                and "cs_runtime" in latest.modules
            ):
                per_hour[h] += 1
                counted.add(key)
    return Fraction(sum(per_hour), 24), counted, per_hour


@dataclass(frozen=True)
class HourlyNodeRule:
    """CS: the mean of 24 hourly snapshots of nodes with a recent heartbeat."""

    def evaluate(self, view: DayView, detail: bool) -> DayValue:
        value, nodes, _ = cs_snapshots(view)
        counted = {node: "in an hourly snapshot" for node in nodes} if detail else None
        return DayValue(value, {}, counted)


def _sc_excluded(view: DayView) -> Callable[[Observation], bool]:
    _, nodes, _ = cs_snapshots(view)
    return lambda obs: obs.node_id is not None and f"node:{obs.node_id}" in nodes


@dataclass(frozen=True)
class ScanRule:
    """CIS: scans not at runtime; a digest's scan within the de-duplication window of its
    previous counted scan is the same scan. A counted scan counts on its file's day."""

    def evaluate(self, view: DayView, detail: bool) -> DayValue:
        window = timedelta(hours=view.timeline.sub.image_scan_dedupe_hours)
        digests = {
            obs.key for obs in view.today if obs.kind is Kind.IMAGE_SCAN and obs.key is not None
        }
        counted: dict[str, str] = {}
        for digest in sorted(digests):
            last: datetime | None = None
            for obs in view.timeline.histories[digest]:
                if obs.day > view.day or not _cis_scan(obs):
                    continue
                if last is None or obs.observed_at - last >= window:
                    last = obs.observed_at
                    if obs.day == view.day:
                        counted[f"{obs.path}:{obs.line}"] = digest
        return DayValue(Fraction(len(counted)), {}, counted if detail else None)


def _cis_scan(obs: Observation) -> bool:
    return obs.source == "image_scanner" and obs.pipeline_stage != "runtime" and not obs.removed


# -- the catalog ----------------------------------------------------------------------------


#: Cumulative marks, bit by bit (``Timeline`` sets bit i when mark i holds).
MARKS: tuple[Mark, ...] = (
    lambda o: o.source == "cloud_agent" and bool(o.agent_id) and "vmdr" in o.modules,  # 0
    lambda o: o.source == "scanner" and "vmdr" in o.modules,  # 1
    lambda o: o.source == "csp_connector",  # 2
    lambda o: o.source == "cloud_agent" and bool(o.agent_id) and "pc" in o.modules,  # 3
    lambda o: o.source == "scanner" and "pc" in o.modules,  # 4
    lambda o: (  # 5
        o.source == "cloud_agent"
        and o.asset_type == "virtual_machine"
        and bool(o.agent_id)
        and o.cloud_provider in CWP_PROVIDERS
    ),
)


def _flexscan_attributed(view: DayView) -> set[str]:
    """Host entities carrying a provider and resource id FlexScan saw in [D-89, D]."""
    uf, day = view.uf, view.day
    return {
        uf.find(key)
        for (source, key), seen in view.timeline.last_seen.items()
        if source == "flexscan" and (day - seen).days <= 89 and key in uf
    }


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    window: str  # peak15 | avg90 | sum90
    rule: Rule
    coverage: str | None = None  # avg90: the source whose files make a day covered


_HOST = frozenset({Kind.HOST})


def _host_state(source: str | None, passes: Callable[[Observation], bool]) -> StateRule:
    return StateRule(_HOST, lambda obs, view: passes(obs), slot=source)


PRODUCTS: dict[str, Product] = {
    p.code: p
    for p in (
        Product(
            "ETM",
            "Enterprise TruRisk Management",
            "peak15",
            StateRule(
                frozenset({Kind.HOST, Kind.CLOUD, Kind.WEB_APP, Kind.API_ENDPOINT, Kind.NODE}),
                lambda obs, view: obs.active and obs.has_findings,
                merge_cloud=True,
            ),
        ),
        Product(
            "CSAM",
            "CyberSecurity Asset Management",
            "peak15",
            _host_state(None, lambda o: o.active and o.source not in INVENTORY_ONLY_SOURCES),
        ),
        Product(
            "ETM_ID",
            "ETM Identity",
            "peak15",
            StateRule(frozenset({Kind.IDENTITY}), _from("idp")),
        ),
        Product(
            "VMDR",
            "Vulnerability Management, Detection & Response",
            "peak15",
            CumulativeRule((("A1", 0), ("A2", 1), ("B", 2)), "C"),
        ),
        Product(
            "VMDR_MOBILE",
            "VMDR Mobile",
            "peak15",
            StateRule(
                frozenset({Kind.MOBILE}),
                lambda obs, view: (
                    obs.active and obs.source in ("mobile_agent", "cloud_agent", "intune")
                ),
            ),
        ),
        Product(
            "VMDR_OT",
            "VMDR Operational Technology",
            "peak15",
            StateRule(
                frozenset({Kind.OT}),
                _from("ot_sensor"),
                weight=lambda obs: {"enriched": Fraction(2, 3), "vulnerable": ONE}.get(
                    obs.ot_level, ZERO
                ),
                labels=lambda obs: (obs.ot_level,),
                components=("basic", "enriched", "vulnerable"),
            ),
        ),
        Product(
            "EDR",
            "Endpoint Detection & Response",
            "peak15",
            _host_state(
                "cloud_agent",
                lambda o: "edr" in o.modules and not o.removed and o.status != "disabled",
            ),
        ),
        Product(
            "ZLINUX",
            "Zlinux Cloud Agents",
            "peak15",
            _host_state("cloud_agent", lambda o: o.active and o.agent_type == "zlinux"),
        ),
        Product(
            "CSPM",
            "Cloud Security Posture Management",
            "avg90",
            DailyRule(_cloud_workload("cspm", CWP_PROVIDERS), weight=_workload_weight),
            coverage="cspm",
        ),
        Product(
            "CWP_AGENT",
            "TotalCloud Agent-based CWP",
            "peak15",
            CumulativeRule((("A", 5),), "B", excluded=_flexscan_attributed),
        ),
        Product(
            "CWP_FLEXSCAN",
            "TotalCloud Agentless CWP (FlexScan)",
            "avg90",
            DailyRule(
                lambda o: (
                    _cloud_workload("flexscan", CWP_PROVIDERS)(o)
                    and o.asset_type == "virtual_machine"
                )
            ),
            coverage="flexscan",
        ),
        Product(
            "CDR",
            "Cloud Detection and Response",
            "avg90",
            DailyRule(_cloud_workload("cdr", CDR_PROVIDERS), weight=_workload_weight),
            coverage="cdr",
        ),
        Product(
            "CS",
            "TotalCloud Container Security",
            "avg90",
            HourlyNodeRule(),
            coverage="container_sensor",
        ),
        Product("CIS", "TotalCloud Container Image Scanning", "sum90", ScanRule()),
        Product(
            "SC",
            "TotalCloud Serverless Containers",
            "avg90",
            DailyRule(
                lambda o: o.source == "serverless_sensor" and o.kind is Kind.SERVERLESS_CONTAINER,
                excluded=_sc_excluded,
            ),
            coverage="serverless_sensor",
        ),
        Product(
            "SSPM",
            "SaaS Security Posture Management",
            "avg90",
            DailyRule(lambda o: o.source == "sspm" and o.kind is Kind.SAAS_USER and o.active),
            coverage="sspm",
        ),
        Product(
            "TAS",
            "TotalAppSec",
            "peak15",
            StateRule(
                frozenset({Kind.WEB_APP, Kind.API_ENDPOINT}),
                _from("tas", "tas"),
                weight=lambda obs: ONE if obs.kind is Kind.WEB_APP else Fraction(1, 10),
                labels=lambda obs: ("web_apps" if obs.kind is Kind.WEB_APP else "api_endpoints",),
                components=("web_apps", "api_endpoints"),
            ),
        ),
        Product(
            "WAS",
            "Web Application Security (Fed High)",
            "peak15",
            StateRule(frozenset({Kind.WEB_APP}), _from("was", "was")),
        ),
        Product(
            "PC",
            "Policy Audit / Policy Compliance",
            "peak15",
            CumulativeRule((("A1", 3), ("A2", 4), ("B", 2)), "C"),
        ),
        Product(
            "PAF",
            "Audit Fix",
            "peak15",
            _host_state("cloud_agent", lambda o: o.active and "paf" in o.modules),
        ),
        Product(
            "FIM",
            "File Integrity Monitoring",
            "peak15",
            StateRule(frozenset({Kind.HOST, Kind.NODE}), _fim),
        ),
        Product(
            "PCI",
            "PCI Compliance",
            "peak15",
            StateRule(frozenset({Kind.PCI_TARGET}), _from("pci_scanner", "pci")),
        ),
        Product(
            "PM",
            "Patch Management (Fed High)",
            "peak15",
            _host_state(
                "cloud_agent", lambda o: o.active and any(m in o.modules for m in ELIM_MODULES)
            ),
        ),
        Product(
            "ELIM",
            "TruRisk Eliminate",
            "peak15",
            StateRule(
                _HOST,
                lambda obs, view: obs.active and any(m in obs.modules for m in ELIM_MODULES),
                labels=lambda obs: [m for m in ELIM_MODULES if m in obs.modules],
                components=ELIM_MODULES,
            ),
        ),
    )
}

"""The 24 products as declarative definitions (spec section 7).

Each product is one ``Product``: its window, its coverage source (avg90) and a rule.
Five rule shapes cover every product: ``StateRule`` (entity states on the day),
``CumulativeRule`` (components seen since the start, less ghosts), ``DailyRule``
(distinct entities observed that day), ``HourlyNodeRule`` (CS heartbeats) and
``ScanRule`` (CIS pipeline de-duplication).

State and cumulative rules judge one entity at a time (``count``): the replay keeps each
entity's contribution and adds up only what changed (``timeline``); the other three read
the day's rows and the recent histories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction

from .facts import Fact, Seen
from .histories import NodeSnapshots
from .numbers import ONE, ZERO
from .observation import Kind, Observation
from .vocabulary import INVENTORY_ONLY_SOURCES

CWP_PROVIDERS = frozenset({"aws", "azure", "gcp", "oci"})
CDR_PROVIDERS = frozenset({"aws", "azure", "gcp"})
ELIM_MODULES = ("pm", "isl", "mtg")
#: A cloud workload FlexScan saw within this many days before D is CWP_FLEXSCAN's.
FLEXSCAN_ATTRIBUTION_DAYS = 90


@dataclass
class DayValue:
    """A product's daily value and the named counts behind it."""

    value: Fraction
    components: dict[str, Fraction] = field(default_factory=dict)
    counted: dict[str, str] | None = None  # entity -> why it counts (explain only)


@dataclass(frozen=True)
class Day:
    """What a state test may read besides the row: the day and the FIM event window."""

    day: date
    fim_event_window_days: int


#: Whether a state passes a product's rule on a day.
StateTest = Callable[[Fact, Day], bool]
#: A predicate marking an observation for a cumulative component (bit i of ``flags``).
Mark = Callable[[Observation], bool]


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
    weight: Callable[[Fact], Fraction] | None = None
    labels: Callable[[Fact], Iterable[str]] = lambda fact: ()
    components: tuple[str, ...] = ()
    slot: str | None = None
    merge_cloud: bool = False

    def count(self, states: Iterable[Seen], day: Day) -> tuple[Fraction, list[str], Seen] | None:
        """How one entity counts: its weight, its components and the state that decides
        (the heaviest passing one); None when no state passes."""
        test = self.test
        passing = [seen for seen in states if test(seen.fact, day)]
        if not passing:
            return None
        if self.weight is None:
            weight, best = ONE, passing[0]
        else:
            measure = self.weight
            best = max(passing, key=lambda seen: measure(seen.fact))
            weight = measure(best.fact)
        labels = self.labels
        named = sorted({label for seen in passing for label in labels(seen.fact)})
        return weight, named, best


@dataclass(frozen=True)
class CumulativeRule:
    """Components of host-like entities marked since the start, less the ghosts.

    Each entity lands in the first component whose mark it carries (A2 is "not in A1",
    B "not in A1 or A2"); ``ghosts`` names the deduction. ``flexscan``: cloud workloads
    FlexScan saw lately are left out (CWP_AGENT).
    """

    components: tuple[tuple[str, int], ...]  # (label, mark bit)
    ghosts: str
    flexscan: bool = False

    def component(self, flags: int) -> str | None:
        """The component an entity with these marks counts in, if any."""
        for label, bit in self.components:
            if flags & (1 << bit):
                return label
        return None

    def names(self) -> tuple[str, ...]:
        return (*(label for label, _ in self.components), self.ghosts)


@dataclass(frozen=True)
class DailyRule:
    """Distinct entities observed on the day by a passing, not removed observation.

    ``cs_nodes``: a row naming a node counted in a CS hourly snapshot of the day is left
    out, and so is its entity (SC)."""

    test: Callable[[Observation], bool]
    weight: Callable[[Observation], Fraction] = lambda obs: ONE
    cs_nodes: bool = False

    def evaluate(
        self, today: Sequence[Observation], nodes: NodeSnapshots | None, detail: bool
    ) -> DayValue:
        counted_nodes = nodes.counted if nodes is not None and self.cs_nodes else None
        weights: dict[str, Fraction] = {}
        barred: set[str] = set()
        for obs in today:
            if obs.removed or not self.test(obs):
                continue
            key = obs.key or ""
            if counted_nodes is not None and obs.node_id and f"node:{obs.node_id}" in counted_nodes:
                barred.add(key)
                continue
            weights[key] = max(weights.get(key, ZERO), self.weight(obs))
        counted = {k: f"weight {w}" for k, w in weights.items() if k not in barred}
        value = sum((w for k, w in weights.items() if k not in barred), ZERO)
        return DayValue(value, {}, counted if detail else None)


@dataclass(frozen=True)
class HourlyNodeRule:
    """CS: the mean of 24 hourly snapshots of nodes with a recent heartbeat."""

    def evaluate(self, nodes: NodeSnapshots, detail: bool) -> DayValue:
        counted = {node: "in an hourly snapshot" for node in nodes.counted} if detail else None
        return DayValue(nodes.value, {}, counted)


@dataclass(frozen=True)
class ScanRule:
    """CIS: scans not at runtime; a digest's scan within the de-duplication window of its
    previous counted scan is the same scan. A counted scan counts on its file's day."""

    def evaluate(self, counted: dict[str, str], detail: bool) -> DayValue:
        return DayValue(Fraction(len(counted)), {}, dict(counted) if detail else None)


Rule = StateRule | CumulativeRule | DailyRule | HourlyNodeRule | ScanRule


def _from(source: str, module: str | None = None) -> StateTest:
    """Active state from ``source`` (listing ``module`` when given)."""
    return lambda fact, day: (
        fact.source == source and fact.active and (module is None or module in fact.modules)
    )


def _fim(fact: Fact, day: Day) -> bool:
    if not fact.active or "fim" not in fact.modules:
        return False
    if fact.kind is Kind.HOST and fact.source == "cloud_agent":
        return True
    if (fact.kind is Kind.HOST and fact.source == "scanner") or (
        fact.kind is Kind.NODE and fact.source == "container_sensor"
    ):
        event = fact.fim_day
        return event is not None and 0 <= (day.day - event).days <= day.fim_event_window_days - 1
    return False


def _cloud_workload(source: str, providers: frozenset[str]) -> Callable[[Observation], bool]:
    return lambda obs: (
        obs.source == source
        and obs.kind is Kind.CLOUD
        and obs.asset_type in ("virtual_machine", "serverless_function")
        and obs.cloud_provider in providers
    )


def _workload_weight(obs: Observation) -> Fraction:
    return ONE if obs.asset_type == "virtual_machine" else Fraction(1, 100)


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


@dataclass(frozen=True)
class Product:
    code: str
    name: str
    window: str  # peak15 | avg90 | sum90
    rule: Rule
    coverage: str | None = None  # avg90: the source whose files make a day covered


_HOST = frozenset({Kind.HOST})


def _host_state(source: str | None, passes: Callable[[Fact], bool]) -> StateRule:
    return StateRule(_HOST, lambda fact, day: passes(fact), slot=source)


PRODUCTS: dict[str, Product] = {
    p.code: p
    for p in (
        Product(
            "ETM",
            "Enterprise TruRisk Management",
            "peak15",
            StateRule(
                frozenset({Kind.HOST, Kind.CLOUD, Kind.WEB_APP, Kind.API_ENDPOINT, Kind.NODE}),
                lambda fact, day: fact.active and fact.has_findings,
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
                lambda fact, day: (
                    fact.active and fact.source in ("mobile_agent", "cloud_agent", "intune")
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
                weight=lambda fact: {"enriched": Fraction(2, 3), "vulnerable": ONE}.get(
                    fact.ot_level, ZERO
                ),
                labels=lambda fact: (fact.ot_level,),
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
            CumulativeRule((("A", 5),), "B", flexscan=True),
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
                cs_nodes=True,
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
                weight=lambda fact: ONE if fact.kind is Kind.WEB_APP else Fraction(1, 10),
                labels=lambda fact: ("web_apps" if fact.kind is Kind.WEB_APP else "api_endpoints",),
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
                lambda fact, day: fact.active and any(m in fact.modules for m in ELIM_MODULES),
                labels=lambda fact: [m for m in ELIM_MODULES if m in fact.modules],
                components=ELIM_MODULES,
            ),
        ),
    )
}

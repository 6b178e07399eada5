"""What the product rules read of a row, kept compactly once the row is folded into a
tenant's state (spec sections 5 to 7).

A ``Fact`` holds the fields the rules test (status, modules, counts as zero / non-zero,
...): every row that reports the same thing shares one ``Fact`` object, so a million
entities cost a few hundred facts. A ``Seen`` is one kept row: its order in the replay,
its day, its fact and the file line it came from (for explanations).
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from .observation import Kind, Observation


class Fact:
    """The rule-relevant fields of a row; one shared object per distinct value (``fact_of``),
    so facts compare and hash by identity."""

    __slots__ = (
        "active",
        "agent_type",
        "asset_type",
        "fim_day",
        "has_findings",
        "kind",
        "modules",
        "ot_level",
        "ports",
        "provider",
        "removed",
        "slot",
        "source",
        "stage",
        "status",
        "vulns",
    )

    def __init__(
        self,
        slot: str,
        source: str,
        kind: Kind,
        asset_type: str,
        status: str,
        active: bool,
        removed: bool,
        modules: frozenset[str],
        agent_type: str,
        has_findings: bool,
        vulns: int | None,
        ports: int | None,
        ot_level: str,
        fim_day: date | None,
        provider: str | None,
        stage: str | None,
    ) -> None:
        self.slot, self.source, self.kind, self.asset_type = slot, source, kind, asset_type
        self.status, self.active, self.removed, self.modules = status, active, removed, modules
        self.agent_type, self.has_findings = agent_type, has_findings
        self.vulns, self.ports = vulns, ports  # None: not reported; 0: zero; 1: non-zero
        self.ot_level, self.fim_day, self.provider, self.stage = ot_level, fim_day, provider, stage

    def fields(self) -> tuple[object, ...]:
        """The values, in constructor order (the stored form)."""
        return (
            self.slot,
            self.source,
            self.kind,
            self.asset_type,
            self.status,
            self.active,
            self.removed,
            self.modules,
            self.agent_type,
            self.has_findings,
            self.vulns,
            self.ports,
            self.ot_level,
            self.fim_day,
            self.provider,
            self.stage,
        )


_FACTS: dict[tuple[object, ...], Fact] = {}


def intern_fact(*values: object) -> Fact:
    """The one ``Fact`` with these field values."""
    fact = _FACTS.get(values)
    if fact is None:
        fact = _FACTS[values] = Fact(*values)  # type: ignore[arg-type]
    return fact


def _zero_or_not(count: int | None) -> int | None:
    return None if count is None else int(count != 0)


def fact_of(obs: Observation) -> Fact:
    """The fact a classified observation reports."""
    fim = obs.last_fim_event_at
    return intern_fact(
        obs.slot,
        obs.source,
        obs.kind,
        obs.asset_type,
        obs.status,
        obs.active,
        obs.removed,
        obs.modules,
        obs.agent_type,
        obs.has_findings,
        _zero_or_not(obs.vuln_count),
        _zero_or_not(obs.open_port_count),
        obs.ot_level,
        fim.date() if fim is not None else None,
        obs.cloud_provider,
        obs.pipeline_stage,
    )


class Seen(NamedTuple):
    """One row as a tenant's state keeps it: replay order, day, fact, file line, and the
    (network, ip) pairs when a plan counts addresses (empty otherwise). ``seq`` is unique
    within a replay."""

    seq: int
    day: date
    fact: Fact
    path: str
    line: int
    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def source(self) -> str:
        return self.fact.source

    def where(self) -> str:
        """Where the row came from, for explanations."""
        return f"{self.fact.source} state of {self.day} ({self.path}:{self.line})"


def keep_latest(states: dict[str, Seen], seen: Seen) -> None:
    """Keep ``seen`` as its slot's state unless a later row holds it."""
    slot = seen.fact.slot
    held = states.get(slot)
    if held is None or held.seq < seen.seq:
        states[slot] = seen

"""Host correlation (spec section 4): union-find over strong identifiers, canonical ids,
and the day-by-day attachment of IP-only observations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from .observation import Observation, ip_key

_PRIORITY = {"asset": 0, "agent": 1, "cloud": 2, "fqdn": 3}


def id_rank(ident: str) -> tuple[int, str]:
    """Canonical-id order: identifier priority, then the lexicographically smallest."""
    return (_PRIORITY[ident.split(":", 1)[0]], ident)


class UnionFind:
    """Groups of strong identifiers; each root knows its group's canonical id."""

    __slots__ = ("_best", "_parent")

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._best: dict[str, str] = {}  # roots of merged groups only: their canonical id

    def __contains__(self, ident: object) -> bool:
        return ident in self._parent

    def find(self, ident: str) -> str:
        parent = self._parent
        root = ident
        while parent[root] != root:
            parent[root] = parent[parent[root]]
            root = parent[root]
        return root

    def link(self, idents: Iterable[str]) -> None:
        """Record that ``idents`` name one entity."""
        parent = self._parent
        root: str | None = None
        for ident in idents:
            other = self.find(ident) if ident in parent else parent.setdefault(ident, ident)
            if root is None:
                root = other
            elif other != root:
                parent[other] = root
                best = min(self.canonical(root), self._best.pop(other, other), key=id_rank)
                self._best[root] = best

    def canonical(self, root: str) -> str:
        return self._best.get(root, root)


class IpIndex:
    """Which strong-identified host observations of a day hold the (network_id, ip) pairs
    that the day's IP-only observations carry (only those pairs are kept)."""

    __slots__ = ("_by_day", "_needed", "_strong")

    def __init__(self) -> None:
        self._by_day: dict[date, dict[tuple[str, str], list[str]]] = {}
        self._strong: list[Observation] = []  # the open day's strong-identified rows
        self._needed: set[tuple[str, str]] = set()  # the open day's IP-only pairs

    def add(self, obs: Observation) -> None:
        """A host row of the open day: strong-identified, or IP-only."""
        if obs.key is None:
            self._needed.update(obs.ip_pairs)
        else:
            self._strong.append(obs)

    def close_day(self, day: date) -> None:
        """Index the open day's pairs that IP-only rows need; forget the rest."""
        if self._needed:
            pairs: dict[tuple[str, str], list[str]] = {}
            for obs in self._strong:
                for pair in obs.ip_pairs:
                    if pair in self._needed:
                        pairs.setdefault(pair, []).append(obs.key or "")
            self._by_day[day] = pairs
        self._strong, self._needed = [], set()

    def attach(self, obs: Observation, uf: UnionFind) -> str:
        """The entity an IP-only observation belongs to, as correlated now.

        It joins the one entity that holds any of its pairs in a strong-identified
        observation of its own day; otherwise it is ``ip:<network_id>/<smallest ip>``.
        """
        pairs = self._by_day.get(obs.day)
        if pairs:
            roots = {uf.find(elem) for pair in obs.ip_pairs for elem in pairs.get(pair, ())}
            if len(roots) == 1:
                return roots.pop()
        return ip_key(obs.network_id, min(obs.ips))

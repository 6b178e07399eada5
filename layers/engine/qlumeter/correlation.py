"""Host correlation (spec section 4): groups of strong identifiers, with canonical ids,
reporting each union so the entities it joins can be merged.

Every identifier points straight at its group's root, and a group of more than one keeps
its members (the root first): finding is one lookup, and a union moves the smaller group
into the larger one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, repeat

_PRIORITY = {"asset": 0, "agent": 1, "cloud": 2, "fqdn": 3}


def id_rank(ident: str) -> tuple[int, str]:
    """Canonical-id order: identifier priority, then the lexicographically smallest."""
    return (_PRIORITY[ident.split(":", 1)[0]], ident)


class UnionFind:
    """Groups of strong identifiers; each root knows its group's canonical id."""

    __slots__ = ("_best", "_members", "_root")

    def __init__(self) -> None:
        self._root: dict[str, str] = {}
        self._members: dict[str, list[str]] = {}  # groups of two or more: root first
        self._best: dict[str, str] = {}  # groups of two or more: their canonical id

    def __contains__(self, ident: object) -> bool:
        return ident in self._root

    def __len__(self) -> int:
        return len(self._root)

    def find(self, ident: str) -> str:
        return self._root[ident]

    def link(self, idents: Iterable[str]) -> list[tuple[str, str]]:
        """Record that ``idents`` name one entity; returns the unions made, each as
        (the root absorbed, the root it now belongs to)."""
        roots = self._root
        root: str | None = None
        unions: list[tuple[str, str]] = []
        for ident in idents:
            other = roots.get(ident)
            if other is None:
                other = roots[ident] = ident
            if root is None:
                root = other
            elif other != root:
                root, absorbed = self._union(root, other)
                unions.append((absorbed, root))
        return unions

    def _union(self, a: str, b: str) -> tuple[str, str]:
        """Join the groups of roots ``a`` and ``b``: (the root kept, the one absorbed)."""
        members = self._members
        group_a, group_b = members.get(a) or [a], members.get(b) or [b]
        if len(group_a) < len(group_b):
            a, b, group_a, group_b = b, a, group_b, group_a
        members.pop(b, None)
        members[a] = group_a
        group_a.extend(group_b)
        roots = self._root
        for ident in group_b:
            roots[ident] = a
        self._best[a] = min(self.canonical(a), self._best.pop(b, b), key=id_rank)
        return a, b

    def canonical(self, root: str) -> str:
        return self._best.get(root, root)

    def store(self, keys: Sequence[str]) -> tuple[list[list[str]], list[int]]:
        """The groups rooted at ``keys`` (empty for keys that are not identifiers) and the
        position of each one's canonical id: what ``restore`` takes back."""
        members, best = self._members, self._best
        groups = [members.get(k) or ([] if k.startswith("ip:") else [k]) for k in keys]
        return groups, [g.index(best[g[0]]) if len(g) > 1 else 0 for g in groups]

    def restore(
        self, keys: Sequence[str], others: Sequence[Sequence[str]], best: Sequence[int]
    ) -> list[list[str]]:
        """Groups back from storage: each key a root (``ip:`` keys are not identifiers)
        with its other members and the position of its canonical id. Returns the groups
        (empty for ``ip:`` keys)."""
        groups = [
            [] if key.startswith("ip:") else [key, *rest]
            for key, rest in zip(keys, others, strict=True)
        ]
        self._root = dict(
            zip(
                chain.from_iterable(groups),
                chain.from_iterable(repeat(g[0], len(g)) for g in groups if g),
                strict=True,
            )
        )
        merged = [(g, b) for g, b in zip(groups, best, strict=True) if len(g) > 1]
        self._members = {g[0]: g for g, _ in merged}
        self._best = {g[0]: g[b] for g, b in merged}
        return groups

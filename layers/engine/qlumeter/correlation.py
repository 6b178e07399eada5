"""Host correlation (spec section 4): union-find over strong identifiers, with canonical
ids, reporting each union so the entities it joins can be merged."""

from __future__ import annotations

from collections.abc import Iterable

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

    def __len__(self) -> int:
        return len(self._parent)

    def find(self, ident: str) -> str:
        parent = self._parent
        root = ident
        while parent[root] != root:
            parent[root] = parent[parent[root]]
            root = parent[root]
        return root

    def link(self, idents: Iterable[str]) -> list[tuple[str, str]]:
        """Record that ``idents`` name one entity; returns the unions made, each as
        (the root absorbed, the root it now belongs to)."""
        parent = self._parent
        root: str | None = None
        unions: list[tuple[str, str]] = []
        for ident in idents:
            other = self.find(ident) if ident in parent else parent.setdefault(ident, ident)
            if root is None:
                root = other
            elif other != root:
                parent[other] = root
                best = min(self.canonical(root), self._best.pop(other, other), key=id_rank)
                self._best[root] = best
                unions.append((other, root))
        return unions

    def canonical(self, root: str) -> str:
        return self._best.get(root, root)

    def parents(self) -> dict[str, str]:
        """Each identifier's parent (for storing)."""
        return self._parent

    def merged(self) -> dict[str, str]:
        """The canonical ids of groups of more than one identifier, by root (for storing)."""
        return self._best

    @classmethod
    def restore(cls, parents: dict[str, str], merged: dict[str, str]) -> UnionFind:
        """A union-find back from ``parents`` and ``merged``."""
        uf = cls()
        uf._parent, uf._best = parents, merged
        return uf

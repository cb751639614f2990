"""Which namespaces an operator serves, from its ``--namespace`` patterns (Kopf's syntax).

A pattern is comma-separated globs (``*``, ``?``); a glob starting with ``!`` excludes, and a
pattern that starts with one implies a leading ``*``. The first inclusive glob matches, later
inclusive ones only re-admit what an exclusion removed: ``"team-*, !*-tmp"`` serves
``team-a`` but not ``team-a-tmp``, and ``"shop,billing"`` serves ``shop`` only (two namespaces
are two patterns). A namespace is served if any pattern matches it. This is
the rule Kopf applies to the same flags, so the Sagas (watched by the operator itself) and the
other kinds (watched by Kopf) are served in the same namespaces.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

_GLOB = frozenset("*?![")


def _globs(pattern: str) -> list[str]:
    globs = [glob.strip() for glob in pattern.split(",") if glob.strip()]
    if not globs or globs[0].startswith("!"):
        globs.insert(0, "*")
    return globs


def _matches(namespace: str, pattern: str) -> bool:
    first, *rest = _globs(pattern)
    matched = initially = fnmatch.fnmatchcase(namespace, first)
    for glob in rest:
        if glob.startswith("!"):
            matched = matched and not fnmatch.fnmatchcase(namespace, glob[1:])
        else:
            matched = matched or (initially and fnmatch.fnmatchcase(namespace, glob))
    return matched


@dataclass(frozen=True)
class Served:
    """The served namespaces; no patterns means the whole cluster."""

    patterns: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...] | None:
        """The namespaces by name when every pattern is one plain name (each can be watched on
        its own, with namespaced RBAC only), else None (watch the cluster and filter)."""
        if not self.patterns or any(_GLOB & set(p) or "," in p for p in self.patterns):
            return None
        return tuple(sorted({pattern.strip() for pattern in self.patterns}))

    def includes(self, namespace: str) -> bool:
        return not self.patterns or any(_matches(namespace, p) for p in self.patterns)

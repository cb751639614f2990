"""The served SagaDefinitions as the operator's own watch of them last showed them.

A saga that references a definition takes it from here, not from a GET per saga: under load,
that GET was a twentieth of the API server's CPU and one more request in every saga's start.
Kubernetes controllers read what they reference the same way (an informer's cache).

- **Freshness**: the watch delivers an edit within moments, so a Saga created in the same
  moment as an edit to its definition may start with the version before the edit (its
  ``status.definition.generation`` says which one it runs). A running saga never changes
  definition either way: the snapshot is taken when it starts.
- **A miss is asked for**: a definition the watch has not shown (created a moment ago, or
  before the first list arrived) is read from the API server, so no saga fails for a
  definition that exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagaz_operator.domain.verdict import Referenced


@dataclass(frozen=True)
class _Entry:
    uid: str
    spec: Mapping[str, Any]
    generation: int


class DefinitionCache:
    """An ``informer.Observer`` of SagaDefinitions, and the lookup sagas use."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}  # by (namespace, name)

    def observe(self, kind: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if kind == "DELETED":  # by uid: a relist reports a vanished object by its uid only
            self._entries = {key: e for key, e in self._entries.items() if e.uid != uid}
            return
        key = (str(meta.get("namespace")), str(meta.get("name")))
        spec, generation = body.get("spec") or {}, int(meta.get("generation", 1))
        self._entries[key] = _Entry(uid=uid, spec=spec, generation=generation)

    def get(self, namespace: str, name: str) -> Referenced | None:
        """The definition as last watched; None: the watch has not shown it (ask the API)."""
        entry = self._entries.get((namespace, name))
        if entry is None:
            return None
        return Referenced(name=name, spec=entry.spec, generation=entry.generation)

"""In-memory fakes of the services' Kubernetes ports, for tests of the services alone.

``FakeKube`` answers like the API server would, except while it is ``down``: then every call
fails with a retryable error (as a refused or timed-out connection does), or, ``frozen``,
hangs until it is up again. Calls are recorded in order, failed ones too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagaz_operator.adapters.kube import ObjectRef
from sagaz_operator.errors import SagazError


class UnreachableError(SagazError):
    retryable = True


class RefusedError(SagazError):
    """A permanent answer (403, 409, 422...)."""


@dataclass
class Call:
    method: str
    ref: ObjectRef | None
    body: Any
    landed: bool


@dataclass
class FakeKube:
    up: asyncio.Event = field(default_factory=asyncio.Event)
    frozen: bool = False
    refuse: set[str] = field(default_factory=set)  # methods answered with a permanent error
    calls: list[Call] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid, merged
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # by name
    table: list[dict[str, Any]] = field(default_factory=list)
    resource_versions: dict[str, str] = field(default_factory=dict)  # by uid
    written: asyncio.Event = field(default_factory=asyncio.Event)  # a status landed

    def __post_init__(self) -> None:
        self.up.set()

    def down(self, *, frozen: bool = False) -> None:
        self.up.clear()
        self.frozen = frozen

    def restore(self) -> None:
        self.up.set()

    async def _answer(self, method: str, ref: ObjectRef | None, body: Any) -> None:
        if not self.up.is_set() and self.frozen:
            await self.up.wait()
        landed = self.up.is_set() and method not in self.refuse
        self.calls.append(Call(method, ref, body, landed))
        if not self.up.is_set():
            raise UnreachableError("Kubernetes API unreachable")
        if method in self.refuse:
            raise RefusedError(f"{method} refused")

    def tries(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def patch_status(
        self, ref: ObjectRef, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> None:
        await self._answer("patch_status", ref, dict(status))
        if resource_version is not None and self.resource_versions.get(ref.uid) != resource_version:
            raise RefusedError("409: the object has been modified")
        self.statuses.setdefault(ref.uid, {}).update(status)
        self.written.set()

    async def create_event(
        self,
        ref: ObjectRef,
        *,
        name: str,
        reason: str,
        message: str,
        warning: bool = False,
        action: str = "Finish",
    ) -> None:
        await self._answer("create_event", ref, {"name": name, "reason": reason})
        self.events.setdefault(name, {"reason": reason, "message": message, "warning": warning})

    async def post_event(
        self,
        ref: ObjectRef,
        *,
        reason: str,
        message: str,
        warning: bool = False,
        action: str = "Reconcile",
    ) -> None:
        try:
            await self._answer("post_event", ref, {"reason": reason})
        except SagazError:
            return
        self.events[f"{ref.name}.{len(self.events)}"] = {"reason": reason, "message": message}

    async def list_table(self, path: str, *, page: int = 500) -> AsyncIterator[dict[str, Any]]:
        await self._answer("list_table", None, path)
        for row in self.table:
            yield row


def saga_row(
    *, uid: str, name: str, phase: str, namespace: str = "shop", version: str = "1"
) -> dict[str, Any]:
    """A Saga as a Table row, the way ``Kube.list_table`` yields it."""
    return {
        "cells": {"Name": name, "Phase": phase},
        "object": {
            "metadata": {
                "uid": uid,
                "name": name,
                "namespace": namespace,
                "resourceVersion": version,
                "generation": 1,
            }
        },
    }

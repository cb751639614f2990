"""In-memory fakes of the saga service's ports, with faults to inject at exact points.

``MemoryStore`` behaves like the PostgreSQL journal where it matters: events go through the
codec and JSON (so replay sees what a restarted operator would), a value PostgreSQL's jsonb
refuses makes the write fail with ``UnstorableError``, ``start`` is all or nothing, and a stale
version conflicts. ``faults`` makes the next calls of a method fail, before or after the
write committed (``Crash`` stands for the process dying: nothing of ours catches it).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sagaz_operator.domain import codec, storable
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Json
from sagaz_operator.domain.record import SagaRecord, Stored
from sagaz_operator.errors import StoreConflictError, UnstorableError


class Crash(BaseException):
    """The operator process dies here."""


@dataclass
class Fault:
    error: BaseException
    after_write: bool = False  # the write committed, then the process/connection failed


def _jsonb(value: object) -> str:
    """What PostgreSQL would store, or UnstorableError as the adapter translates it."""
    found = storable.problem(value, path="value")
    if found is not None:
        raise UnstorableError(f"UntranslatableCharacterError: {found}")
    return json.dumps(value)


@dataclass
class MemoryStore:
    records: dict[str, SagaRecord] = field(default_factory=dict)
    journals: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    faults: dict[str, list[Fault]] = field(default_factory=lambda: defaultdict(list))
    calls: list[str] = field(default_factory=list)

    def events(self, uid: str) -> list[ev.Event]:
        return [codec.decode(json.loads(body)) for body in self.journals[uid]]

    def _fault(self, method: str, *, after_write: bool) -> None:
        pending = self.faults[method]
        if pending and pending[0].after_write == after_write:
            raise pending.pop(0).error

    async def load(self, uid: str) -> Stored | None:
        self.calls.append("load")
        self._fault("load", after_write=False)
        record = self.records.get(uid)
        if record is None:
            return None
        return Stored(record=record, journal=self.events(uid))

    async def start(
        self, record: SagaRecord, *, first: ev.Event, phase: str, finished: bool
    ) -> None:
        self.calls.append("start")
        self._fault("start", after_write=False)
        if record.uid in self.records:
            raise StoreConflictError(f"saga {record.uid} was recorded already")
        _jsonb(record.definition), _jsonb(record.input)
        body = _jsonb(codec.encode(first))
        self.records[record.uid] = record
        self.journals[record.uid] = [body]
        self._fault("start", after_write=True)

    async def append(
        self,
        record: SagaRecord,
        *,
        version: int,
        events: Sequence[ev.Event],
        phase: str,
        finished: bool,
    ) -> int:
        self.calls.append("append")
        self._fault("append", after_write=False)
        journal = self.journals[record.uid]
        if len(journal) != version:
            raise StoreConflictError(f"saga {record.uid}: journal moved past {version}")
        journal.extend(_jsonb(codec.encode(event)) for event in events)
        self._fault("append", after_write=True)
        return len(journal)


class Locks:
    async def try_acquire(self, uid: str) -> bool:
        return True

    def holds(self, uid: str) -> bool:
        return True

    async def release(self, uid: str) -> None:
        return None


@dataclass
class Kube:
    """The Kubernetes calls the saga service makes, answered from memory."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, bool]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)  # the paths read, in order

    async def get(self, path: str) -> dict[str, Any] | None:
        self.gets.append(path)
        return self.objects.get(path)

    async def delete(self, path: str, *, propagation: str = "Background") -> None:
        self.objects.pop(path, None)

    async def patch_status(
        self, ref: object, status: dict[str, Any], *, resource_version: str | None = None
    ) -> None:
        self.statuses.append(json.loads(json.dumps(status)))

    async def create_event(
        self,
        ref: object,
        *,
        name: str,
        reason: str,
        message: str,
        warning: bool = False,
        action: str = "Finish",
    ) -> None:
        self.events.append((reason, message, warning))

    async def post_event(
        self, ref: object, *, reason: str, message: str, warning: bool, action: str = ""
    ) -> None:
        self.events.append((reason, message, warning))

    def conditions(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for status in self.statuses:
            for condition in status.get("conditions") or []:
                found[condition["type"]] = condition
        return found


@dataclass
class Runner:
    """Participants: ``answers[step]`` is called for each action; compensations succeed."""

    answers: dict[str, Callable[[int], Json]] = field(default_factory=dict)
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    traceparents: list[str] = field(default_factory=list)

    async def run(
        self, *, saga: Any, state: Any, step: str, purpose: str, attempt: int, traceparent: str
    ) -> Json:
        self.calls.append((step, purpose, attempt))
        self.traceparents.append(traceparent)
        await asyncio.sleep(0)
        if purpose == "action" and step in self.answers:
            return self.answers[step](attempt)
        return {"done": step}

    async def stop(self, **_: Any) -> None:
        return None


class Clock:
    """Time that moves only a millisecond per reading: exact and instant."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class Leases:
    """The Lease calls of ``services.membership`` over one in-memory namespace; ``away``
    makes every call fail as an unreachable API server does."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    away: bool = False

    def _check(self) -> None:
        if self.away:
            from sagaz_operator.adapters.kube import ApiUnreachableError

            raise ApiUnreachableError("the API server is away")

    async def apply(self, path: str, body: Any) -> dict[str, Any]:
        self._check()
        self.objects[path] = json.loads(json.dumps(body))
        return self.objects[path]

    async def delete(self, path: str, *, propagation: str = "Background") -> None:
        self._check()
        self.objects.pop(path, None)

    async def list_labelled(self, path: str, selector: str) -> list[dict[str, Any]]:
        self._check()
        key, _, value = selector.partition("=")
        return [
            lease
            for name, lease in self.objects.items()
            if name.startswith(path) and lease["metadata"]["labels"].get(key) == value
        ]


#: A two-step saga (a, then b, each with a compensation) over fake participants, retried
#: at once, for the saga service's in-memory tests.
FAST = {"maxAttempts": 2, "backoff": {"initialSeconds": 0, "factor": 1, "maxSeconds": 0}}


def http(path: str) -> dict[str, Any]:
    return {"http": {"url": f"http://shop.test{path}"}}


SHOP = {
    "defaults": {"retry": FAST},
    "compensationRetry": FAST,
    "steps": [
        {"name": "a", "action": http("/a"), "compensation": http("/a/undo")},
        {"name": "b", "dependsOn": ["a"], "action": http("/b"), "compensation": http("/b/undo")},
    ],
}

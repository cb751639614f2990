"""Sagas in: one executor task per Saga object, started and stopped from its watch events.

The Sagas' watch (``services.informer``) delivers every event of every Saga to
``Intake.observe``; the intake keeps, per saga, one task running ``sagas.run`` over a live
copy of the object, and the user's levers
(``spec.suspend`` / ``spec.abort`` / ``spec.retry``) read from each event. A lever changed
on a saga whose executor is not running it (the saga has finished) is judged by
``levers.refuse_if_finished``, which writes the refusal on the object. This replaces a Kopf
daemon per Saga, because a daemon costs Kopf writes to every Saga: a finalizer added when the daemon
starts and removed when it ends, and the field handlers for the levers cost a diff-base
annotation. With the intake Kopf writes nothing to a Saga.

Why no finalizer is needed:

- **Deletion still stops the executor.** A ``DELETED`` event, or a ``deletionTimestamp`` (the
  object is held by someone else's finalizer), sets the saga's stop flag; the executor stops
  at once, without compensating, as before. Its last status write finds the object gone
  (404), which the status writer ignores; its Events need no live object.
- **One executor per saga** is the PostgreSQL advisory lock's job, not the finalizer's: an
  executor still running on a deleted object (in the moment before its stop flag is seen), or
  on another replica, cannot write the journal without the lock.
- **Deleted while no operator ran**: nothing starts for it afterwards (the object is not
  listed); its journal stays in PostgreSQL, as for any deleted saga.

A saga whose executor returned (finished, and past its TTL wait) is remembered by uid until
its object is deleted, so the events its own status writes cause do not start it again; that
memory is bounded by the Sagas that exist. An executor that fails unexpectedly (a bug) is
logged and started again after ``RESTART_SECONDS``, as Kopf did with a failed daemon.

**Ownership** (scale-out): with several replicas, ``owns(uid)`` (``services.membership``) says
which sagas are this replica's. An event of a saga it does not own costs a dict lookup and a
hash per member: the intake keeps only the latest body of each unfinished one (bounded by the
Sagas that exist), starts nothing, writes nothing. When membership changes, ``rebalance``
starts the sagas this replica now owns from those bodies (the executor resumes from the
journal, as after a crash) and stops those it no longer owns the way deletion does: at a safe
point, without compensating, after journaling the attempts in flight (``Controls.drain``),
releasing the advisory lock for the new owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagaz_operator import metrics
from sagaz_operator.services import levers, sagas
from sagaz_operator.services.executor import Controls, wait_stopped

logger = logging.getLogger(__name__)

#: How long an executor that failed unexpectedly waits before it is started again.
RESTART_SECONDS = 10.0
#: How long stopping waits for executors to reach a safe point before cancelling them.
STOP_TIMEOUT_SECONDS = 30.0


#: The levers as read from a spec: suspend, abort, retry.
_Levers = tuple[bool, bool, int]
_LEVER_NAMES = ("suspend", "abort", "retry")


def _levers(spec: Mapping[str, Any]) -> _Levers:
    return bool(spec.get("suspend")), bool(spec.get("abort")), int(spec.get("retry") or 0)


def _controls(wanted: _Levers) -> Controls:
    suspend, abort, retry = wanted
    return Controls(suspend=suspend, abort=abort, retry=retry)


@dataclass
class _Saga:
    body: dict[str, Any]  # updated in place from every event: the executor's live view
    controls: Controls
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    handed: bool = False  # stopped because another replica owns it now


class Intake:
    def __init__(
        self, runtime: sagas.SagaRuntime, *, owns: Callable[[str], bool] = lambda uid: True
    ) -> None:
        self._runtime = runtime
        self._owns = owns
        self._running: dict[str, _Saga] = {}
        self._unowned: dict[str, dict[str, Any]] = {}  # by uid: the latest body of each
        self._closing = False
        self._finished: dict[str, _Levers] = {}  # by uid: the levers last seen on it
        self._judging: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> int:
        """Sagas with an executor task right now (finished ones waiting out a TTL included)."""
        return len(self._running)

    def observe(self, kind: str | None, body: Mapping[str, Any]) -> None:
        """Take one watch event (``kind`` None for the initial listing) of a Saga."""
        meta = body.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            self._finished.pop(uid, None)
            self._unowned.pop(uid, None)
            saga = self._running.get(uid)
            if saga is not None:
                saga.handed = False
                saga.stopped.set()
            return
        if self._not_mine(uid, body):
            return
        wanted = _levers(body.get("spec") or {})
        if uid in self._finished:
            before, self._finished[uid] = self._finished[uid], wanted
            self._judge(body, before, wanted)
            return
        saga = self._running.get(uid)
        if saga is not None:
            controls = saga.controls
            before = (controls.suspend, controls.abort, controls.retry)
            saga.body.clear()
            saga.body.update(body)
            suspend, abort, retry = wanted
            controls.update(suspend=suspend, abort=abort, retry=retry)
            if controls.parked:  # finished, waiting for a retry or its TTL: nobody else judges
                self._judge(body, before, wanted)
            return
        saga = _Saga(body=dict(body), controls=_controls(wanted))
        self._running[uid] = saga
        saga.task = asyncio.create_task(self._run(uid, saga), name=f"saga {meta.get('name')}")

    def _not_mine(self, uid: str, body: Mapping[str, Any]) -> bool:
        """Keep the body of a saga another replica owns (to start it if it becomes ours)."""
        if uid in self._running or self._owns(uid):
            self._unowned.pop(uid, None)
            return False
        self._finished.pop(uid, None)  # its owner judges its levers; it restarts here if ours
        self._unowned[uid] = dict(body)
        return True

    def rebalance(self) -> None:
        """Membership changed: stop the sagas no longer ours, start those that now are."""
        for uid, saga in list(self._running.items()):
            if not saga.stopped.is_set() and not self._owns(uid):
                saga.controls.drain = True  # the attempts in flight end here, not twice
                saga.handed = True
                saga.stopped.set()  # a safe point, no compensation; the lock is released
                metrics.handovers.labels(direction="out").inc()
        for uid in [uid for uid in self._finished if not self._owns(uid)]:
            del self._finished[uid]  # its next event keeps its body; its new owner judges it
        for uid, body in list(self._unowned.items()):
            if uid not in self._running and self._owns(uid):
                metrics.handovers.labels(direction="in").inc()
                self.observe(None, body)

    def _judge(self, body: Mapping[str, Any], before: _Levers, wanted: _Levers) -> None:
        """Refuse, on the object, each lever that changed on a finished saga and cannot apply."""
        runtime = self._runtime
        for lever, old, new in zip(_LEVER_NAMES, before, wanted, strict=True):
            if old == new:
                continue
            task = asyncio.create_task(
                levers.refuse_if_finished(
                    kube=runtime.kube,
                    journal=runtime.journal,
                    body=dict(body),
                    lever=lever,
                    clock=runtime.clock,
                ),
                name=f"judge {lever}",
            )
            self._judging.add(task)
            task.add_done_callback(self._judged)

    def _judged(self, task: asyncio.Task[None]) -> None:
        self._judging.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("a lever could not be judged: %s", task.exception())

    async def stop(self) -> None:
        """Stop every executor (the operator exits); cancel those that do not stop in time."""
        self._closing = True
        for judging in list(self._judging):
            judging.cancel()
        tasks = [saga.task for saga in self._running.values() if saga.task is not None]
        for saga in self._running.values():
            saga.stopped.set()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, uid: str, saga: _Saga) -> None:
        name = saga.body["metadata"].get("name")
        try:
            while not saga.stopped.is_set():
                try:
                    await sagas.run(
                        self._runtime, body=saga.body, controls=saga.controls, stopped=saga.stopped
                    )
                except Exception:
                    logger.exception(
                        "saga %s: the executor failed; starting it again in %gs",
                        name,
                        RESTART_SECONDS,
                    )
                    await wait_stopped(saga.stopped, RESTART_SECONDS)
                    continue
                if not saga.stopped.is_set():
                    self._finished[uid] = _levers(saga.body.get("spec") or {})
                return
        finally:
            if self._running.get(uid) is saga:
                del self._running[uid]
                if saga.handed and not self._closing:  # keep its body; ours again meanwhile?
                    self._unowned[uid] = saga.body
                    if self._owns(uid):
                        self.observe(None, saga.body)

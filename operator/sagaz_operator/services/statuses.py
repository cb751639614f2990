"""The status outbox: a finished saga's last word reaches the API server, whatever it does.

A saga's final ``.status`` (its terminal phase) and its terminal Event (``SagaSucceeded``,
``SagaCompensated``, ... as ``codec.public_type`` names them) must land even when the API
server is unreachable, frozen or restarting at the moment the saga finishes. The executor
cannot wait for that: it holds the saga's advisory lock and an outage may last minutes. So
``Reporter.close`` hands them to this per-process outbox and returns, and the outbox retries
each with backoff (``domain.backoff`` with ``STATUS_BACKOFF``, jittered so that sagas that
failed together do not return in lockstep) until it lands or the object is gone — a 404
counts as done, the saga was deleted. A few deliveries run at a time, so an API server that
comes back is not stampeded by thousands of queued writes at once.

Why only terminal statuses go here: a finished saga's journal no longer changes, so its
terminal status is never stale — writing it late, even after another operator process wrote
it, cannot undo anything. A running saga's status is written by its executor's own flusher
(which also backs off), and a saga that moves to another process is projected by that one.
The terminal Event has a fixed name (``event_name``), so a try whose answer was lost and
is repeated still makes one Event, not two.

What it does not promise: it lives in memory. A crash, or a backlog beyond ``capacity`` (the
oldest are dropped), loses pending writes; the resync (``services.resync``) repairs those from
the journal, the source of truth. The outbox makes convergence quick; the resync makes it sure.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sagaz_operator import metrics
from sagaz_operator.adapters.kube import ObjectRef
from sagaz_operator.domain import backoff
from sagaz_operator.domain.model import Backoff, Json
from sagaz_operator.errors import SagazError

logger = logging.getLogger(__name__)

#: Between tries of a status write or a terminal Event: 0.5 s doubling up to 15 s.
STATUS_BACKOFF = Backoff(initial_seconds=0.5, factor=2.0, max_seconds=15.0)

Sleep = Callable[[float], Awaitable[None]]


class StatusPort(Protocol):
    """What the outbox needs of the Kubernetes API. Errors say whether to try again
    (``SagazError.retryable``); a vanished object and an existing Event are not errors."""

    async def patch_status(
        self, ref: ObjectRef, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> None: ...

    async def create_event(
        self,
        ref: ObjectRef,
        *,
        name: str,
        reason: str,
        message: str,
        warning: bool = False,
        action: str = "Finish",
    ) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Notice:
    """A Kubernetes Event to post: its PascalCase reason, the message, Normal or Warning."""

    reason: str
    message: str
    warning: bool
    action: str = "Finish"  # the events.k8s.io ``action``: what the operator was doing


def event_name(ref: ObjectRef, reason: str) -> str:
    """The fixed name of the Event ``reason`` about ``ref``: the same on every try, in every
    operator process, so retries and repairs never post a fact twice."""
    digest = hashlib.sha256(f"{ref.uid}/{reason}".encode()).hexdigest()[:16]
    return f"{ref.name[:200]}.{digest}"


@dataclass(kw_only=True)
class _Delivery:
    """What is still to be written for one saga. ``version`` counts submissions, so a write
    that lands while a newer status was submitted does not mark the newer one as done."""

    ref: ObjectRef
    status: dict[str, Json] | None
    notice: Notice | None
    version: int = 0
    status_done: int = -1
    notice_done: bool = False

    @property
    def done(self) -> bool:
        return (self.status is None or self.status_done == self.version) and (
            self.notice is None or self.notice_done
        )


class StatusOutbox:
    def __init__(
        self,
        *,
        kube: StatusPort,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        capacity: int = 10_000,
        concurrency: int = 8,
    ) -> None:
        self._kube = kube
        self._sleep = sleep
        self._jitter = jitter
        self._capacity = capacity
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: dict[str, _Delivery] = {}  # by saga uid, oldest first
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(
        self, ref: ObjectRef, *, status: dict[str, Json] | None, notice: Notice | None
    ) -> None:
        """Write ``status`` (the latest wins) and post ``notice`` for saga ``ref``, retrying
        in the background; returns at once."""
        if status is None and notice is None:
            return
        delivery = self._pending.get(ref.uid)
        if delivery is None:
            self._make_room()
            delivery = self._pending[ref.uid] = _Delivery(ref=ref, status=None, notice=None)
        if status is not None:
            delivery.status = status
            delivery.version += 1
        if notice is not None and notice != delivery.notice:
            delivery.notice, delivery.notice_done = notice, False
        metrics.status_outbox_pending.set(len(self._pending))
        if ref.uid not in self._tasks:
            self._tasks[ref.uid] = asyncio.create_task(
                self._deliver(ref.uid), name=f"status outbox {ref.name}"
            )

    async def close(self, *, grace: float) -> None:
        """Give pending deliveries up to ``grace`` seconds, then drop them (the next
        process's resync repairs what they would have written)."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if late:
            logger.warning(
                "%d final saga statuses not written before shutdown; the resync repairs them",
                len(late),
            )

    def _make_room(self) -> None:
        while len(self._pending) >= self._capacity:
            oldest = next(iter(self._pending))
            self._forget(oldest)
            task = self._tasks.pop(oldest, None)
            if task is not None:
                task.cancel()
            metrics.status_outbox_dropped.inc()
            logger.warning("status outbox full: dropped saga %s (the resync repairs it)", oldest)

    def _forget(self, uid: str) -> None:
        self._pending.pop(uid, None)
        metrics.status_outbox_pending.set(len(self._pending))

    async def _deliver(self, uid: str) -> None:
        failures = 0
        try:
            while (delivery := self._pending.get(uid)) is not None and not delivery.done:
                try:
                    async with self._slots:
                        await self._try(delivery)
                except SagazError as error:
                    if not error.retryable:
                        logger.warning(
                            "saga %s: status or Event refused, not retried: %s",
                            delivery.ref.name,
                            error,
                        )
                        break
                    failures += 1
                    metrics.status_write_retries.inc()
                    delay = backoff.delay_seconds(
                        STATUS_BACKOFF, attempt=failures, jitter=self._jitter()
                    )
                    logger.warning(
                        "saga %s: final status not written yet (%s); retrying in %.1fs",
                        delivery.ref.name,
                        error,
                        delay,
                    )
                    await self._sleep(delay)
            if failures and delivery is not None and delivery.done:
                logger.info("saga %s: final status written after %d retries", uid, failures)
        finally:
            if self._tasks.get(uid) is asyncio.current_task():
                del self._tasks[uid]
                self._forget(uid)

    async def _try(self, delivery: _Delivery) -> None:
        if delivery.status is not None and delivery.status_done != delivery.version:
            version = delivery.version
            await self._kube.patch_status(delivery.ref, delivery.status)
            delivery.status_done = version
        notice = delivery.notice
        if notice is not None and not delivery.notice_done:
            await self._kube.create_event(
                delivery.ref,
                name=event_name(delivery.ref, notice.reason),
                reason=notice.reason,
                message=notice.message,
                warning=notice.warning,
                action=notice.action,
            )
            if delivery.notice is notice:
                delivery.notice_done = True

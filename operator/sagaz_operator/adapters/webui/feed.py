"""The web UI's live updates: one poller for every open page, fanned out as server-sent events.

The journal has no trigger to ``LISTEN`` to (only the outbox does, and it fires per statement
with no payload), so the feed polls ``sagaz_sagas`` once per ``interval`` — while at least one
page listens, and not at all otherwise. Each subscriber gets a small bounded queue: a page too
slow to keep up loses the backlog and is told to reload (``more``), so a stuck browser tab can
never grow the operator's memory. The number of subscribers is bounded too.

A subscription is answered once the poller has its cursor, so a page that opens the stream
first and loads its data after (as the pages do) cannot miss a change in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError
from sagaz_operator.adapters.postgres.overview import OVERLAP, Change, Changes, Overview

logger = logging.getLogger(__name__)

#: Open pages one operator serves live at once; more are refused (503) rather than slowed.
MAX_SUBSCRIBERS = 100
_QUEUE = 8
#: Seconds a new subscriber waits for the poller's first pass (longer only if the database is down).
READY_WITHIN = 5.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TooManySubscribersError(RuntimeError):
    """The feed already serves ``MAX_SUBSCRIBERS`` pages."""


class Feed:
    def __init__(self, overview: Overview, *, interval: float = 1.0) -> None:
        self._overview = overview
        self._interval = interval
        self._subscribers: set[asyncio.Queue[Changes | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Changes | None]]:
        """A queue of changes for as long as the context lasts; ``None`` in it: closing."""
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise TooManySubscribersError(f"{MAX_SUBSCRIBERS} pages are already listening")
        queue: asyncio.Queue[Changes | None] = asyncio.Queue(maxsize=_QUEUE)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._ready.clear()
            self._task = asyncio.create_task(self._poll(), name="sagaz-ui-feed")
        try:
            # Once the poller has its cursor, every later write reaches this queue: a page
            # that loads its data after this point misses nothing.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READY_WITHIN):
                    await self._ready.wait()
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def close(self) -> None:
        """Tell every subscriber to end (``None``), and stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for queue in list(self._subscribers):
            _drain(queue)
            queue.put_nowait(None)

    async def _poll(self) -> None:
        cursor: datetime | None = None
        seen: dict[tuple[str, int], datetime] = {}
        while self._subscribers:
            try:
                if cursor is None:
                    # Start at the newest change: what happened before, the pages have loaded.
                    cursor = await self._overview.latest() or _EPOCH
                    seen = {
                        (c.uid, c.version): c.updated_at
                        for c in (await self._overview.changed_since(cursor)).items
                    }
                    self._ready.set()
                else:
                    cursor = self._advance(cursor, seen, await self._overview.changed_since(cursor))
            except DatabaseUnavailableError as error:
                logger.warning("UI feed: database unavailable: %s", error)
            except Exception:
                # Whatever went wrong, the pages keep their stream and the next pass tries again.
                logger.exception("UI feed: polling failed")
            await asyncio.sleep(self._interval)

    def _advance(
        self, cursor: datetime, seen: dict[tuple[str, int], datetime], changes: Changes
    ) -> datetime:
        """Publish what is new in ``changes``; the next cursor. ``seen`` is updated in place."""
        fresh = [c for c in changes.items if (c.uid, c.version) not in seen]
        for change in changes.items:
            seen[(change.uid, change.version)] = change.updated_at
            cursor = max(cursor, change.updated_at)
        # Forget what fell out of the re-read window, so the set stays small.
        horizon = cursor - OVERLAP
        for key in [key for key, at in seen.items() if at < horizon]:
            del seen[key]
        if fresh or changes.more:
            self._publish(Changes(items=fresh, more=changes.more))
        return cursor

    def _publish(self, changes: Changes) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                # Too slow: drop its backlog and tell it to reload instead.
                _drain(queue)
                queue.put_nowait(Changes(items=[], more=True))
            else:
                queue.put_nowait(changes)


def _drain(queue: asyncio.Queue[Changes | None]) -> None:
    while not queue.empty():
        queue.get_nowait()


def as_json(change: Change) -> dict[str, str | int]:
    return {
        "uid": change.uid,
        "namespace": change.namespace,
        "name": change.name,
        "definition": change.definition,
        "phase": change.phase,
        "journalLength": change.version,
    }

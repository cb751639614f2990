"""A consumer inbox: each event handled once per consumer, whatever Kafka redelivers.

An OutboxWorker publishes at least once: a record may arrive twice (a retried send), and a
consumer that crashes between its writes and its offset commit sees the record again. Each
record carries its event id in the CloudEvents header ``ce_id``. ``Inbox.process`` inserts
``(consumer, ce_id)`` into the inbox table *in the same transaction as the handler's writes*:
the second time, the insert finds the row and the handler does not run. (A concurrent twin —
two members of a group after a rebalance — waits on the uncommitted row, then skips.)

A handler that raises rolls its writes back; the failure is counted in ``<table>_attempts``
(outside that transaction, so the count survives restarts), and after ``max_attempts`` the
event is copied to ``<table>_dead`` and marked handled, so one poison event never blocks its
partition. A record without ``ce_id`` cannot be deduplicated: it is dead-lettered at once.

``Inbox.consume`` drives an ``aiokafka.AIOKafkaConsumer`` (created with a ``group_id`` and
``enable_auto_commit=False``): it handles each record of a batch in order, retrying a failing
one with backoff, and commits the batch's offsets only afterwards.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from sagaz_participant import schema
from sagaz_participant.errors import ConfigurationError
from sagaz_participant.schema import Connection

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Event:
    """One Kafka record, with its CloudEvents attributes read from the headers."""

    id: str  # ce_id; "" when the record has none
    type: str  # ce_type
    source: str  # ce_source
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, bytes]

    def json(self) -> Any:
        return json.loads(self.value)

    @classmethod
    def from_record(cls, record: Any) -> Event:
        """From an aiokafka ``ConsumerRecord`` (or anything with its attributes)."""
        headers = {name: bytes(value) for name, value in (record.headers or ())}

        def text(name: str) -> str:
            return headers.get(name, b"").decode("utf-8", "replace")

        return cls(
            id=text("ce_id"),
            type=text("ce_type"),
            source=text("ce_source"),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            headers=headers,
        )


EventHandler = Callable[[Connection, Event], Awaitable[None]]


class Delivery(enum.Enum):
    PROCESSED = "processed"  # the handler ran and committed
    DUPLICATE = "duplicate"  # handled before (or dead-lettered): skipped
    FAILED = "failed"  # the handler raised; rolled back, to be tried again
    DEAD_LETTERED = "dead-lettered"  # failed max_attempts times (or malformed): set aside


class Inbox:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        consumer: str,
        table: str = "sagaz_inbox",
        max_attempts: int = 5,
        retry_seconds: float = 0.5,
        retry_max_seconds: float = 30.0,
    ) -> None:
        if not consumer:
            raise ConfigurationError("an inbox needs a consumer name")
        if max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, got {max_attempts}")
        self.pool = pool
        self.consumer = consumer
        self.table = schema.identifier(table)
        self.max_attempts = max_attempts
        self.retry_seconds = retry_seconds
        self.retry_max_seconds = retry_max_seconds

    async def install(self) -> None:
        await schema.install(self.pool, schema.INBOX, self.table)

    async def process(self, event: Event, handler: EventHandler) -> Delivery:
        """One try at ``event``; see the module docstring."""
        if not event.id:
            error = "the record has no ce_id header"
            fresh = await self._dead_letter(event, attempts=0, error=error)
            return Delivery.DEAD_LETTERED if fresh else Delivery.DUPLICATE
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    claimed = await conn.fetchval(
                        f"INSERT INTO {self.table} (consumer, event_id, disposition)"
                        " VALUES ($1, $2, 'processed') ON CONFLICT DO NOTHING RETURNING true",
                        self.consumer,
                        event.id,
                    )
                    if not claimed:
                        return Delivery.DUPLICATE
                    await handler(conn, event)
                await conn.execute(
                    f"DELETE FROM {self.table}_attempts WHERE consumer = $1 AND event_id = $2",
                    self.consumer,
                    event.id,
                )
                return Delivery.PROCESSED
            except (asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                raise  # the database, not the event: nothing is counted against it
            except Exception as failure:  # the handler's own failure, whatever it is
                error = f"{type(failure).__name__}: {failure}"[:2000]
                attempts: int = await conn.fetchval(
                    f"INSERT INTO {self.table}_attempts (consumer, event_id, attempts, last_error)"
                    " VALUES ($1, $2, 1, $3) ON CONFLICT (consumer, event_id) DO UPDATE"
                    f" SET attempts = {self.table}_attempts.attempts + 1, last_error = $3"
                    " RETURNING attempts",
                    self.consumer,
                    event.id,
                    error,
                )
        logger.warning(
            "event %s failed (try %d of %d): %s", event.id, attempts, self.max_attempts, error
        )
        if attempts >= self.max_attempts:
            await self._dead_letter(event, attempts=attempts, error=error)
            return Delivery.DEAD_LETTERED
        return Delivery.FAILED

    async def handle(
        self,
        event: Event,
        handler: EventHandler,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> Delivery:
        """Try ``event`` until it is processed, a duplicate, or dead-lettered."""
        delay = self.retry_seconds
        while (delivery := await self.process(event, handler)) is Delivery.FAILED:
            await sleep(delay)
            delay = min(delay * 2, self.retry_max_seconds)
        return delivery

    async def consume(
        self, consumer: Any, handler: EventHandler, *, stop: asyncio.Event | None = None
    ) -> None:
        """Handle what ``consumer`` (an started AIOKafkaConsumer) delivers until ``stop`` is set.

        Offsets are committed after the batch's events are handled, never before.
        """
        while stop is None or not stop.is_set():
            batches: Mapping[Any, Sequence[Any]] = await consumer.getmany(timeout_ms=500)
            offsets = {}
            for partition, records in batches.items():
                for record in records:
                    await self.handle(Event.from_record(record), handler)
                    offsets[partition] = record.offset + 1
            if offsets:
                await consumer.commit(offsets)

    async def _dead_letter(self, event: Event, *, attempts: int, error: str) -> bool:
        """Set ``event`` aside; False if it already was (a redelivered malformed record)."""
        event_id = event.id or f"{event.topic}/{event.partition}/{event.offset}"
        headers = json.dumps({k: v.decode("utf-8", "replace") for k, v in event.headers.items()})
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                f"INSERT INTO {self.table} (consumer, event_id, disposition)"
                " VALUES ($1, $2, 'dead') ON CONFLICT DO NOTHING RETURNING true",
                self.consumer,
                event_id,
            )
            if not fresh:
                return False
            await conn.execute(
                f"INSERT INTO {self.table}_dead (consumer, event_id, event_type, topic, partition,"
                ' "offset", key, value, headers, attempts, error)'
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)"
                " ON CONFLICT DO NOTHING",
                self.consumer,
                event_id,
                event.type,
                event.topic,
                event.partition,
                event.offset,
                event.key,
                event.value,
                headers,
                attempts,
                error,
            )
        logger.error("event %s dead-lettered after %d tries: %s", event_id, attempts, error)
        return True

"""Kafka: publishing a batch of outbox records with an idempotent producer.

The producer is idempotent with ``acks=all``: a record the broker acknowledged is replicated,
and the producer's own retries never duplicate or reorder records of one partition. aiokafka
keeps one request in flight per partition, and an idempotent producer retries a retriable
error until it succeeds (it never expires a batch), so the records of one key reach Kafka in
the order they were sent.

A batch is sent whole — every ``send()`` first, then the acknowledgements are awaited — and
each record gets an ``Outcome``:

- ``DELIVERED``: acknowledged. Only these may be marked published.
- ``FAILED``: refused for a reason of its own (too large, an invalid topic, not authorised).
  Later records with the same key are then not sent, so a key's records never overtake one
  that failed.
- ``UNSENT``: not sent, or not acknowledged in time. Retriable errors (broker down, no leader,
  timeouts) mean Kafka is unavailable, not that the record is bad; the report says so and the
  relay backs off.

Sends that were not acknowledged in time stay with the producer and may still succeed later
(a duplicate, which consumers drop by ``ce_id``). Until they have settled nothing new is sent:
new records would otherwise queue up behind them during an outage, once per retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from sagaz_operator.domain.partitions import Outcome

logger = logging.getLogger(__name__)


class KafkaUnavailableError(Exception):
    """Kafka cannot be reached (or does not answer) right now; try again later."""


@dataclass(frozen=True, kw_only=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True, kw_only=True)
class Result:
    outcome: Outcome
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class Report:
    results: Sequence[Result]  # one per record, in the order given
    unavailable: bool  # some records are UNSENT because Kafka did not answer


def _transient(error: BaseException) -> bool:
    if isinstance(error, KafkaTimeoutError | TimeoutError):
        return True
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


class Publisher:
    def __init__(self, *, bootstrap_servers: str, client_id: str) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._producer: Any = None
        self._outstanding: set[asyncio.Future[Any]] = set()
        self.healthy = False

    async def start(self) -> None:
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            max_batch_size=256 * 1024,  # room for a few hundred events per partition request
        )
        try:
            await producer.start()
        except KafkaError as error:
            await producer.stop()
            raise KafkaUnavailableError(_describe(error)) from error
        self._producer = producer
        self.healthy = True

    async def stop(self, *, grace_seconds: float) -> None:
        """Flush and close; sends still unanswered after ``grace_seconds`` are given up."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        stopping = asyncio.ensure_future(producer.stop())
        done, _ = await asyncio.wait({stopping}, timeout=grace_seconds)
        if not done:
            logger.warning("Kafka did not acknowledge the last sends within %ss", grace_seconds)
            # Give up the unanswered sends: with its sender gone, stop() closes at once.
            producer._sender.sender_task.cancel()
        await stopping
        self.healthy = False

    async def probe(self, *, within: float) -> bool:
        """Ask the cluster for metadata: tells an idle worker whether Kafka is still there."""
        if self._producer is None:
            return False
        try:
            ok = await asyncio.wait_for(self._producer.client.force_metadata_update(), within)
        except TimeoutError:
            ok = False
        self.healthy = bool(ok) and not self._outstanding
        return self.healthy

    async def publish(self, records: Sequence[Record], *, within: float) -> Report:
        """Send ``records`` and wait up to ``within`` seconds for their acknowledgements."""
        if self._producer is None:
            raise KafkaUnavailableError("the Kafka producer is not started")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        unsent = Result(outcome=Outcome.UNSENT)
        if not await self._settle_outstanding(within):
            self.healthy = False
            return Report(results=[unsent] * len(records), unavailable=True)

        results: list[Result] = [unsent] * len(records)
        futures: dict[int, asyncio.Future[Any]] = {}
        failed_keys: set[bytes] = set()
        unavailable = False
        try:
            async with asyncio.timeout_at(deadline):
                for index, record in enumerate(records):
                    if record.key in failed_keys:
                        continue
                    try:
                        futures[index] = await self._producer.send(
                            record.topic,
                            record.value,
                            key=record.key,
                            headers=list(record.headers),
                        )
                    except KafkaError as error:
                        if _transient(error):
                            unavailable = True
                            break
                        results[index] = Result(outcome=Outcome.FAILED, error=_describe(error))
                        failed_keys.add(record.key)
        except TimeoutError:
            unavailable = True  # the producer could not even take the records in time

        if futures:
            await asyncio.wait(futures.values(), timeout=max(0.0, deadline - loop.time()))
        for index, future in futures.items():
            if not future.done():
                self._outstanding.add(future)
                unavailable = True
                continue
            problem = None if future.cancelled() else future.exception()
            if future.cancelled() or (problem is not None and _transient(problem)):
                unavailable = True
            elif problem is not None:
                results[index] = Result(outcome=Outcome.FAILED, error=_describe(problem))
            else:
                results[index] = Result(outcome=Outcome.DELIVERED)
        self.healthy = not unavailable
        return Report(results=results, unavailable=unavailable)

    async def _settle_outstanding(self, within: float) -> bool:
        """Wait for sends of earlier batches that were still unanswered; True once none are."""
        if self._outstanding:
            await asyncio.wait(self._outstanding, timeout=within)
            for future in [f for f in self._outstanding if f.done()]:
                self._outstanding.discard(future)
                if not future.cancelled():
                    future.exception()  # retrieved: its row is still pending and is sent again
        return not self._outstanding

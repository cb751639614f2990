"""The outbox relay: one ``sagaz-outbox-worker`` publishing an outbox table to Kafka.

A worker loops over cycles. Each cycle it (re)connects what is missing, revisits which
partitions it holds every ``rebalance_seconds`` (``domain.partitions.plan_ownership``), refreshes
the table-wide gauges every ``stats_seconds``, then *drains*: claims a batch of the oldest
pending rows of its partitions, publishes it, settles it (``domain.partitions.settle``) and
commits, batch after batch until one comes back short. Then it sleeps until an insert's NOTIFY
arrives (a dedicated LISTEN connection), the poll interval passes (the fallback for a lost
notification), or a failed aggregate's retry is due.

A row that failed is retried after a backoff: its aggregate is left out of batches until then
(only in memory: a restarted worker, or the next owner of the partition, retries at once).

When the database or Kafka is unavailable the cycle ends and the worker waits, backing off
exponentially, without counting attempts against any row; ``/healthz`` answers 503 meanwhile.

On SIGTERM the batch in flight is finished, the lock connection closed (which releases every
partition at once, for the other replicas to take) and the producer flushed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sagaz_operator import metrics
from sagaz_operator.adapters import kafka, status_server
from sagaz_operator.adapters.postgres import outbox
from sagaz_operator.adapters.postgres.errors import DatabaseError
from sagaz_operator.domain import backoff, partitions
from sagaz_operator.domain.model import Backoff
from sagaz_operator.errors import ConfigError
from sagaz_operator.services.relay_config import RelaySettings

logger = logging.getLogger(__name__)

_OUTAGE = Backoff(initial_seconds=0.5, factor=2.0, max_seconds=30.0)
_STOP_TIMEOUT = 10.0


class Relay:
    def __init__(
        self,
        settings: RelaySettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._wall_clock = wall_clock  # for the publish latency, against rows' created_at
        self._rng = rng or random.Random()
        self._retry = Backoff(
            initial_seconds=settings.retry_seconds,
            factor=2.0,
            max_seconds=max(settings.retry_seconds, settings.retry_max_seconds),
        )
        self.outbox = outbox.Outbox(
            dsn=settings.database_url, table=settings.table, partitions=settings.partitions
        )
        self._publisher = kafka.Publisher(
            bootstrap_servers=settings.bootstrap_servers, client_id=f"sagaz-outbox-{settings.label}"
        )
        self._listener: outbox.Listener | None = None
        self._wake = asyncio.Event()
        self._blocked: dict[str, float] = {}  # aggregate -> when its failed row may be retried
        self._next_rebalance = 0.0
        self._next_stats = 0.0
        self._troubles = 0  # consecutive cycles that ended in an outage
        self._foreign = 0  # workers on the table with another partition count
        label = settings.label
        self._published = metrics.outbox_published.labels(outboxworker=label)
        self._failed = metrics.outbox_failed.labels(outboxworker=label)
        self._dead = metrics.outbox_dead_lettered.labels(outboxworker=label)
        self._batch_seconds = metrics.outbox_batch_duration.labels(outboxworker=label)
        self._owned = metrics.outbox_partitions_owned.labels(outboxworker=label)
        self._latency = metrics.outbox_publish_latency.labels(outboxworker=label)
        self._healthy = metrics.outbox_worker_healthy.labels(outboxworker=label)

    @property
    def healthy(self) -> bool:
        listening = self._listener is not None and self._listener.alive
        return self.outbox.connected and listening and self._publisher.healthy

    async def start(self) -> None:
        """Connect to the database: fails fast (``ConfigError``) if it or the table is missing."""
        try:
            table = await self.outbox.connect()
        except DatabaseError as error:
            raise ConfigError(
                f"cannot reach the database at SAGAZ_DATABASE_URL: {error}"
            ) from error
        self._listener = outbox.Listener(
            dsn=self.settings.database_url, channel=table.channel, on_notify=self._wake.set
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; then finish the batch in flight and let go of everything."""
        await self.start()
        http = None
        try:
            if self.settings.address is not None:
                http = await status_server.serve(*self.settings.address, self._health)
            while not stop.is_set():
                delay, wakeable = await self._cycle(stop)
                await self._sleep(delay, stop, wakeable=wakeable)
        finally:
            await self._close()
            if http is not None:
                await http.cleanup()

    async def _cycle(self, stop: asyncio.Event) -> tuple[float, bool]:
        """One pass; returns how long to sleep and whether a NOTIFY may cut the sleep short."""
        try:
            await self._connect()
            now = self._clock()
            if now >= self._next_rebalance:
                await self._rebalance()
                self._next_rebalance = now + self.settings.rebalance_seconds
            if now >= self._next_stats:
                await self._stats()
                self._next_stats = now + self.settings.stats_seconds
            while not stop.is_set() and await self._batch():
                pass
        except DatabaseError as error:
            self._healthy.set(0)
            metrics.database_up.set(0)
            return self._outage("the database", error), False
        except kafka.KafkaUnavailableError as error:
            self._healthy.set(0)
            return self._outage("Kafka", error), False
        self._healthy.set(1 if self.healthy else 0)
        metrics.database_up.set(1 if self.outbox.connected else 0)
        self._troubles = 0
        return self._idle_seconds(), True

    async def _connect(self) -> None:
        if not self.outbox.connected:
            await self.outbox.connect()
            self._next_rebalance = 0.0  # the locks went with the old connection
            self._owned.set(0)
        assert self._listener is not None
        if not self._listener.alive:
            await self._listener.start()
            self._wake.set()  # notifications sent while it was away are lost: look anyway
        await self._publisher.start()

    async def _rebalance(self) -> None:
        count = self.settings.partitions
        survey = await self.outbox.survey()
        before = self.outbox.owned
        if survey.foreign != self._foreign:
            self._foreign = survey.foreign
            if survey.foreign:
                logger.warning(
                    "%d worker(s) with another partition count run on this table; they would "
                    "shard aggregates differently, so this one holds no partitions meanwhile",
                    survey.foreign,
                )
        if survey.foreign:
            for partition in sorted(before):
                await self.outbox.release(partition)
        else:
            plan = partitions.plan_ownership(
                partitions=count,
                owned=before,
                taken=survey.taken,
                live_workers=survey.live,
                order=self._rng.sample(range(count), count),
            )
            for partition in plan.release:
                await self.outbox.release(partition)
            taken = 0
            for partition in plan.candidates:
                if taken >= plan.wanted:
                    break
                taken += await self.outbox.take(partition)
        after = self.outbox.owned
        self._owned.set(len(after))
        if after != before:
            logger.info("holding %d of %d partitions: %s", len(after), count, sorted(after))
        if after - before:
            self._wake.set()

    async def _stats(self) -> None:
        found = await self.outbox.counts()
        label = self.settings.label
        metrics.outbox_pending.labels(outboxworker=label).set(found.pending)
        metrics.outbox_oldest_pending.labels(outboxworker=label).set(found.oldest_pending_seconds)
        metrics.outbox_dead.labels(outboxworker=label).set(found.dead)
        await self._publisher.probe(within=5.0)

    async def _batch(self) -> bool:
        """Publish one batch; True if it was full (more rows are probably waiting)."""
        self._wake.clear()  # a NOTIFY from now on means rows this batch may not see
        if not self.outbox.owned:
            return False
        now = self._clock()
        self._blocked = {key: due for key, due in self._blocked.items() if due > now}
        limit = self.settings.batch_size
        async with self.outbox.claim(limit=limit, exclude=sorted(self._blocked)) as claim:
            if not claim.rows:
                return False
            report = await self._publish(claim.rows)
            settlement = partitions.settle(report, max_attempts=self.settings.max_attempts)
            await claim.settle(
                published=settlement.published,
                failed=[(f.row_id, f.error, False) for f in settlement.retry]
                + [(f.row_id, f.error, True) for f in settlement.dead],
            )
        finished = self._clock()
        self._batch_seconds.observe(finished - now)
        self._observe_latency(claim.rows, settlement.published)
        self._published.inc(len(settlement.published))
        self._failed.inc(len(settlement.retry) + len(settlement.dead))
        self._dead.inc(len(settlement.dead))
        for failure in settlement.retry:
            delay = backoff.delay_seconds(
                self._retry, attempt=failure.attempt, jitter=self._rng.random()
            )
            self._blocked[failure.aggregate_id] = finished + delay
            logger.warning(
                "event %s (aggregate %s) failed attempt %d, retrying in %.1fs: %s",
                *(failure.row_id, failure.aggregate_id, failure.attempt, delay, failure.error),
            )
        for failure in settlement.dead:
            logger.error(
                "event %s (aggregate %s) is dead after %d attempts: %s",
                *(failure.row_id, failure.aggregate_id, failure.attempt, failure.error),
            )
        unsent = any(row.outcome is partitions.Outcome.UNSENT for row in report)
        if unsent and not self._publisher.healthy:
            raise kafka.KafkaUnavailableError("records were not acknowledged in time")
        return len(claim.rows) >= limit

    async def _publish(self, rows: list[outbox.Row]) -> list[partitions.Attempt]:
        """Send the rows that can be sent; a row with an invalid topic fails without a try."""
        results: list[kafka.Result | None] = [None] * len(rows)
        sendable: list[tuple[int, kafka.Record]] = []
        refused: set[str] = set()  # aggregates with a row that cannot be sent: keep them in order
        for index, row in enumerate(rows):
            topic = row.topic or self.settings.topic
            if row.aggregate_id in refused:
                results[index] = kafka.Result(outcome=partitions.Outcome.UNSENT)
            elif not partitions.valid_topic(topic):
                results[index] = kafka.Result(
                    outcome=partitions.Outcome.FAILED, error=f"invalid Kafka topic {topic[:300]!r}"
                )
                refused.add(row.aggregate_id)
            else:
                sendable.append((index, self._record(row, topic)))
        report = await self._publisher.publish(
            [record for _, record in sendable], within=self.settings.publish_timeout_seconds
        )
        for (index, _), result in zip(sendable, report.results, strict=True):
            results[index] = result
        return [
            partitions.Attempt(
                row_id=row.id,
                aggregate_id=row.aggregate_id,
                attempts=row.attempts,
                outcome=result.outcome,
                error=result.error,
            )
            for row, result in zip(rows, results, strict=True)
            if result is not None
        ]

    def _observe_latency(self, rows: list[outbox.Row], published: tuple[str, ...]) -> None:
        """Each published row's age: how far behind its writer the relay runs. The database's
        and the worker's clocks may differ a little; a negative age is counted as 0."""
        acknowledged = set(published)
        wall = self._wall_clock()
        for row in rows:
            if row.id in acknowledged:
                self._latency.observe(max(0.0, (wall - row.created_at).total_seconds()))

    def _record(self, row: outbox.Row, topic: str) -> kafka.Record:
        headers = partitions.cloudevent_headers(
            event_id=row.id,
            event_type=row.event_type,
            source=self.settings.source,
            time=row.created_at,
        ) + partitions.row_headers(row.headers)
        return kafka.Record(
            topic=topic, key=row.aggregate_id.encode(), value=row.payload.encode(), headers=headers
        )

    def _outage(self, what: str, error: Exception) -> float:
        self._troubles += 1
        delay = backoff.delay_seconds(_OUTAGE, attempt=self._troubles, jitter=self._rng.random())
        logger.warning("%s is unavailable (%s); trying again in %.1fs", what, error, delay)
        return delay

    def _idle_seconds(self) -> float:
        now = self._clock()
        due = [
            now + self.settings.poll_seconds,
            self._next_rebalance,
            self._next_stats,
            *self._blocked.values(),
        ]
        return max(0.0, min(due) - now)

    async def _sleep(self, seconds: float, stop: asyncio.Event, *, wakeable: bool) -> None:
        events = [stop, self._wake] if wakeable else [stop]
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _close(self) -> None:
        await self.outbox.close()  # first: the partitions are free for the others at once
        self._owned.set(0)
        self._healthy.set(0)
        if self._listener is not None:
            await self._listener.close()
        await self._publisher.stop(grace_seconds=_STOP_TIMEOUT)

    def _health(self) -> tuple[bool, dict[str, Any]]:
        details = {
            "database": self.outbox.connected,
            "kafka": self._publisher.healthy,
            "partitions": sorted(self.outbox.owned),
        }
        return self.healthy, details


async def main(settings: RelaySettings) -> None:
    """Run one worker until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await Relay(settings).run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)

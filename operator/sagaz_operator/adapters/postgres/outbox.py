"""An outbox table seen by one relay worker: partition ownership, batches, counts.

**The table** is named by configuration, so its name is checked against a plain (optionally
schema-qualified) identifier pattern, resolved by PostgreSQL (``to_regclass``: unquoted SQL
rules, the search path), and from then on written into SQL only as the catalog's own names,
quoted. Its required columns are checked at start, so a wrong table fails with a clear message.

**Ownership.** A partition is owned while this worker holds the session-level advisory lock
``(table oid, partition)`` (the two-``int4`` key space, apart from the saga locks' ``bigint``
keys). The locks *and every batch* live on one connection: if it dies, PostgreSQL aborts the
batch and drops the locks in the same moment, so a partition can never be claimed by a new
owner while an old owner's batch still holds its rows.

**Live workers** are counted by ``application_name`` (``sagaz-outbox/<table oid>/<partitions>``,
visible in ``pg_stat_activity`` to every role): no heartbeat table, and a worker that dies
stops counting the moment its connection goes. Workers configured with a different partition
count would shard the same aggregates differently, so they are reported as ``foreign``.

**A batch** is the oldest pending rows of the owned partitions, ``FOR UPDATE`` in one
transaction that stays open while the batch is published. Not ``SKIP LOCKED``: nobody else
claims rows of these partitions, and skipping a row someone else has locked would publish the
rows after it out of order; waiting is bounded by ``lock_timeout``. Order is ``created_at``,
then a numeric ``headers.sequence`` (rows written in one transaction share ``created_at``: the
saga journal numbers them), then ``id``. Published rows are marked with one UPDATE, failures
with another, before the commit.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from sagaz_operator.adapters.postgres.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    unavailable,
)
from sagaz_operator.api.outboxworker import SQL_IDENTIFIER
from sagaz_operator.domain.model import Json
from sagaz_operator.errors import ConfigError

COLUMNS = frozenset(
    {
        "id",
        "aggregate_type",
        "aggregate_id",
        "event_type",
        "payload",
        "headers",
        "topic",
        "created_at",
        "status",
        "attempts",
        "last_error",
        "published_at",
    }
)
LOCK_TIMEOUT = "10s"  # the longest a batch waits for a row someone else has locked


def partition_sql(column: str, partitions: str) -> str:
    """The SQL twin of ``domain.partitions.partition_of`` (a test keeps them equal)."""
    digest = f"encode(sha256(convert_to({column}, 'UTF8')), 'hex')"
    return f"((('x' || left({digest}, 8))::bit(32)::bigint % {partitions})::int)"


_ORDER = (
    "created_at,"
    " CASE WHEN jsonb_typeof(headers -> 'sequence') = 'number'"
    " THEN (headers ->> 'sequence')::numeric END,"
    " id"
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, kw_only=True)
class Table:
    oid: int
    schema: str
    name: str

    @property
    def sql(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def channel(self) -> str:
        """What the insert trigger NOTIFYs: ``TG_TABLE_NAME``."""
        return self.name

    @property
    def lock_class(self) -> int:
        """The oid as the signed int4 ``pg_try_advisory_lock(int4, int4)`` takes."""
        return self.oid - 2**32 if self.oid >= 2**31 else self.oid


@dataclass(frozen=True, kw_only=True)
class Row:
    id: str
    aggregate_id: str
    event_type: str
    payload: str  # JSON text, published as is
    headers: dict[str, Json]
    topic: str | None
    created_at: datetime
    attempts: int


@dataclass(frozen=True, kw_only=True)
class Survey:
    live: int  # workers on this table with our partition count, this one included
    foreign: int  # workers on this table with another partition count
    taken: frozenset[int]  # partitions some worker holds


@dataclass(frozen=True, kw_only=True)
class Counts:
    pending: int
    oldest_pending_seconds: float
    dead: int


async def resolve(conn: asyncpg.Connection, name: str) -> Table:
    """The table ``name`` refers to, or a ``ConfigError`` saying what is wrong with it."""
    if re.fullmatch(SQL_IDENTIFIER, name) is None:
        raise ConfigError(
            f"outbox table {name!r} is not a plain SQL identifier (optionally schema.table)"
        )
    row = await conn.fetchrow(
        """SELECT c.oid, n.nspname, c.relname FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)""",
        name,
    )
    if row is None:
        raise ConfigError(
            f"outbox table {name!r} does not exist"
            " (create it from examples/outboxworker/outbox.sql)"
        )
    found = await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped",
        row["oid"],
    )
    missing = COLUMNS - {column["attname"] for column in found}
    if missing:
        raise ConfigError(
            f"outbox table {name!r} lacks the columns {', '.join(sorted(missing))}"
            " (see examples/outboxworker/outbox.sql)"
        )
    return Table(oid=row["oid"], schema=row["nspname"], name=row["relname"])


async def counts(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, table: Table
) -> Counts:
    """Pending and dead rows, and the age of the oldest pending one (0 if none)."""
    row = await conn.fetchrow(
        f"""SELECT (SELECT count(*) FROM {table.sql} WHERE status = 'pending') AS pending,
                   (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
                      FROM {table.sql} WHERE status = 'pending') AS oldest,
                   (SELECT count(*) FROM {table.sql} WHERE status = 'dead') AS dead"""
    )
    assert row is not None
    return Counts(
        pending=row["pending"],
        oldest_pending_seconds=max(0.0, float(row["oldest"])),
        dead=row["dead"],
    )


class Claim:
    """A batch of rows, locked until the transaction it was read in ends."""

    def __init__(self, conn: asyncpg.Connection, table: Table, rows: list[Row]) -> None:
        self._conn, self._table, self.rows = conn, table, rows

    async def settle(
        self, *, published: Sequence[str], failed: Sequence[tuple[str, str, bool]]
    ) -> None:
        """Mark ``published`` rows, and count a failed attempt for each (id, error, dead)."""
        if published:
            await self._conn.execute(
                f"""UPDATE {self._table.sql} SET status = 'published', published_at = now()
                    WHERE id = ANY($1::uuid[])""",
                list(published),
            )
        if failed:
            ids, errors, dead = zip(*failed, strict=True)
            await self._conn.execute(
                f"""UPDATE {self._table.sql} AS t
                    SET attempts = t.attempts + 1, last_error = f.error,
                        status = CASE WHEN f.dead THEN 'dead' ELSE t.status END
                    FROM unnest($1::uuid[], $2::text[], $3::bool[]) AS f(id, error, dead)
                    WHERE t.id = f.id""",
                list(ids),
                list(errors),
                list(dead),
            )


class Outbox:
    """One worker's connection to the table: its partition locks and its batches."""

    def __init__(self, *, dsn: str, table: str, partitions: int) -> None:
        self._dsn, self._name, self._partitions = dsn, table, partitions
        self._conn: asyncpg.Connection | None = None
        self.table: Table | None = None
        self.owned: frozenset[int] = frozenset()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def connect(self) -> Table:
        if self.connected and self.table is not None:
            return self.table
        self.owned = frozenset()
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=10, server_settings={"lock_timeout": LOCK_TIMEOUT}
            )
        except unavailable() as error:
            raise DatabaseUnavailableError(str(error)) from error
        except asyncpg.PostgresError as error:  # refused: a wrong password, no such database
            raise DatabaseError(str(error)) from error
        try:
            self.table = await resolve(conn, self._name)
            await conn.execute(
                "SELECT set_config('application_name', $1, false)", self._application_name()
            )
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        return self.table

    async def survey(self) -> Survey:
        async with self._guard() as (conn, table):
            row = await conn.fetchrow(
                """SELECT count(*) FILTER (WHERE application_name = $1) AS live,
                          count(*) FILTER (WHERE application_name <> $1) AS foreign,
                          ARRAY(SELECT l.objid::bigint FROM pg_locks l
                                WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted
                                  AND l.classid = $3::bigint::oid
                                  AND l.database = (SELECT oid FROM pg_database
                                                    WHERE datname = current_database())
                          ) AS taken
                   FROM pg_stat_activity
                   WHERE datname = current_database() AND application_name LIKE $2""",
                self._application_name(),
                f"sagaz-outbox/{table.oid}/%",
                table.oid,
            )
        assert row is not None
        return Survey(live=row["live"], foreign=row["foreign"], taken=frozenset(row["taken"]))

    async def take(self, partition: int) -> bool:
        async with self._guard() as (conn, table):
            taken: bool = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", table.lock_class, partition
            )
        if taken:
            self.owned |= {partition}
        return taken

    async def release(self, partition: int) -> None:
        async with self._guard() as (conn, table):
            await conn.execute("SELECT pg_advisory_unlock($1, $2)", table.lock_class, partition)
        self.owned -= {partition}

    @asynccontextmanager
    async def claim(self, *, limit: int, exclude: Sequence[str]) -> AsyncIterator[Claim]:
        """The oldest pending rows of the owned partitions, skipping ``exclude``d aggregates.

        Leaving the block normally commits what ``Claim.settle`` wrote; an exception rolls
        it back, so nothing is marked.
        """
        async with self._guard() as (conn, table), conn.transaction():
            records = await conn.fetch(
                f"""SELECT id, aggregate_id, event_type, payload::text AS payload,
                           headers::text AS headers, topic, created_at, attempts
                    FROM {table.sql}
                    WHERE status = 'pending'
                      AND {partition_sql("aggregate_id", "$2")} = ANY($1::int[])
                      AND aggregate_id <> ALL($3::text[])
                    ORDER BY {_ORDER}
                    LIMIT $4
                    FOR UPDATE""",
                sorted(self.owned),
                self._partitions,
                list(exclude),
                limit,
            )
            yield Claim(conn, table, [_row(record) for record in records])

    async def counts(self) -> Counts:
        async with self._guard() as (conn, table):
            return await counts(conn, table)

    async def close(self) -> None:
        """Close the connection, which releases every partition."""
        conn, self._conn = self._conn, None
        self.owned = frozenset()
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=5)
            except unavailable():
                conn.terminate()

    def _application_name(self) -> str:
        assert self.table is not None
        return f"sagaz-outbox/{self.table.oid}/{self._partitions}"

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[tuple[asyncpg.Connection, Table]]:
        """The connection, turning its loss into ``DatabaseUnavailableError`` (and no locks)."""
        if self._conn is None or self._conn.is_closed() or self.table is None:
            self.owned = frozenset()
            raise DatabaseUnavailableError("not connected to the outbox database")
        try:
            yield self._conn, self.table
        except unavailable() as error:
            conn, self._conn = self._conn, None
            self.owned = frozenset()
            if conn is not None:
                conn.terminate()
            raise DatabaseUnavailableError(str(error)) from error
        except asyncpg.PostgresError as error:  # a statement refused, e.g. by lock_timeout
            raise DatabaseError(str(error)) from error


def _row(record: asyncpg.Record) -> Row:
    headers: Any = json.loads(record["headers"])
    return Row(
        id=str(record["id"]),
        aggregate_id=record["aggregate_id"],
        event_type=record["event_type"],
        payload=record["payload"],
        headers=headers if isinstance(headers, dict) else {},
        topic=record["topic"],
        created_at=record["created_at"],
        attempts=record["attempts"],
    )


class Listener:
    """A dedicated connection LISTENing on the table's channel; calls ``on_notify`` on each."""

    def __init__(self, *, dsn: str, channel: str, on_notify: Callable[[], None]) -> None:
        self._dsn, self._channel, self._on_notify = dsn, channel, on_notify
        self._conn: asyncpg.Connection | None = None

    @property
    def alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        if self.alive:
            return
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=10, server_settings={"application_name": "sagaz-outbox-listen"}
            )
        except unavailable() as error:
            raise DatabaseUnavailableError(str(error)) from error
        try:
            await conn.add_listener(self._channel, self._notified)
        except BaseException as error:
            conn.terminate()
            if isinstance(error, unavailable()):
                raise DatabaseUnavailableError(str(error)) from error
            raise
        self._conn = conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=5)
            except unavailable():
                conn.terminate()

    def _notified(self, *_: object) -> None:
        self._on_notify()

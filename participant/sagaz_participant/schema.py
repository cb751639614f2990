"""The SDK's tables. ``install`` creates them if missing (safe to run at every start-up).

Table names are configurable, so one database can serve several participants; they must be
plain SQL identifiers (they are written into statements, never taken from a request).
"""

from __future__ import annotations

import re

import asyncpg

from sagaz_participant.errors import ConfigurationError

# What handlers get: a plain connection, or one lent by a pool (the type checker tells them apart).
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")

IDEMPOTENCY = """
CREATE TABLE IF NOT EXISTS {table} (
    key         text PRIMARY KEY,
    -- answered: the first final answer for the key; cancelled: an action whose compensation
    -- came first (its answer is the refusal a late action gets)
    disposition text NOT NULL CHECK (disposition IN ('answered', 'cancelled')),
    status      integer NOT NULL,
    headers     jsonb NOT NULL DEFAULT '[]',
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
"""

INBOX = """
CREATE TABLE IF NOT EXISTS {table} (
    consumer     text NOT NULL,
    event_id     text NOT NULL,
    disposition  text NOT NULL CHECK (disposition IN ('processed', 'dead')),
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE IF NOT EXISTS {table}_attempts (
    consumer   text NOT NULL,
    event_id   text NOT NULL,
    attempts   integer NOT NULL,
    last_error text NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE IF NOT EXISTS {table}_dead (
    consumer    text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    key         bytea,
    value       bytea NOT NULL,
    headers     jsonb NOT NULL,
    attempts    integer NOT NULL,
    error       text NOT NULL,
    dead_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"""


def identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(
            f"table name {name!r} must be a lower-case SQL identifier of at most 51 characters"
        )
    return name


async def install(pool: asyncpg.Pool, ddl: str, table: str) -> None:
    # Two participants starting at once would race on CREATE TABLE IF NOT EXISTS.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('sagaz_participant'), 0)")
        await conn.execute(ddl.format(table=table))

"""Versioned SQL migrations, applied idempotently at start-up (and by a Helm hook).

Each ``migrations/NNNN_name.sql`` runs once, in its own transaction, recorded in
``sagaz_schema_migrations``. A transaction-scoped advisory lock serialises operators that
start at the same moment, so exactly one of them applies a given version (and creates that
table: two concurrent ``CREATE TABLE IF NOT EXISTS`` may both try, and one fails).
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

_LOCK_KEY = 0x5A6A_0001  # an arbitrary constant shared by every sagaz process


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every bundled migration, in order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


async def migrate(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
) -> list[str]:
    """Apply the migrations this database lacks; returns the names applied."""
    applied_now = []
    async with conn.transaction():  # concurrent IF NOT EXISTS can still collide: lock first
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS sagaz_schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    for version, name, sql in available():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            done = await conn.fetchval(
                "SELECT 1 FROM sagaz_schema_migrations WHERE version = $1", version
            )
            if done:
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO sagaz_schema_migrations (version, name) VALUES ($1, $2)",
                version,
                name,
            )
            applied_now.append(name)
            logger.info("applied database migration %s", name)
    return applied_now


async def migrate_database(url: str) -> list[str]:
    """Connect to ``url``, apply what is missing, disconnect; the names applied."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def check_reachable(url: str) -> None:
    """Connect once and disconnect; ``DatabaseUnavailableError`` saying why if that fails."""
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        raise DatabaseUnavailableError(str(error)) from error
    await conn.close()

"""How far behind an outbox table is, read once (for ``OutboxWorker.status``).

The operator reads it with a short-lived connection to the database the OutboxWorker names
(any service's outbox, not only the operator's own); the queries are the relay's own.
"""

from __future__ import annotations

import asyncpg

from sagaz_operator.adapters.postgres import outbox
from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError, unavailable


async def read(url: str, table: str) -> outbox.Counts:
    """Pending and dead events of ``table``; ``ConfigError`` if it is not an outbox table."""
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except unavailable() as error:
        raise DatabaseUnavailableError(str(error)) from error
    try:
        return await outbox.counts(conn, await outbox.resolve(conn, table))
    finally:
        await conn.close()

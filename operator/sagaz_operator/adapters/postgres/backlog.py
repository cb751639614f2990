"""How far behind an outbox table is: pending and dead events, oldest pending age.

The operator reads this for ``OutboxWorker.status`` with a short-lived connection to the
database the OutboxWorker names (any service's outbox, not only the operator's own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError, unavailable

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


@dataclass(frozen=True, kw_only=True)
class Backlog:
    pending: int
    oldest_pending_seconds: float
    dead: int


def quoted(table: str) -> str:
    """``table`` (optionally ``schema.table``) as a quoted SQL identifier; refuses anything else."""
    if not _IDENTIFIER.match(table):
        raise ValueError(f"not a plain SQL table name: {table!r}")
    return ".".join(f'"{part}"' for part in table.split("."))


async def read(url: str, table: str) -> Backlog:
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except unavailable() as error:
        raise DatabaseUnavailableError(str(error)) from error
    try:
        row = await conn.fetchrow(
            f"""SELECT
                  count(*) FILTER (WHERE status = 'pending') AS pending,
                  coalesce(extract(epoch FROM now() - min(created_at)
                           FILTER (WHERE status = 'pending')), 0) AS oldest,
                  count(*) FILTER (WHERE status = 'dead') AS dead
                FROM {quoted(table)} WHERE status IN ('pending', 'dead')"""
        )
    finally:
        await conn.close()
    assert row is not None
    return Backlog(
        pending=row["pending"], oldest_pending_seconds=float(row["oldest"]), dead=row["dead"]
    )

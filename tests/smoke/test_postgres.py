"""The test session's PostgreSQL is a real server."""

from __future__ import annotations

import asyncpg
import pytest

pytestmark = pytest.mark.postgres


async def test_round_trip(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, body jsonb)")
        await conn.execute("INSERT INTO t VALUES (1, $1::jsonb)", '{"ok": true}')

        row = await conn.fetchrow("SELECT id, body->>'ok' AS ok FROM t")
    finally:
        await conn.close()

    assert (row["id"], row["ok"]) == (1, "true")

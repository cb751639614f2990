"""Migrations when several operators start at once on a database nobody has migrated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from sagaz_operator.adapters.postgres import migrations

pytestmark = pytest.mark.postgres


@pytest.fixture
async def fresh_url(postgres_url: str) -> AsyncIterator[str]:
    """The URL of a database created for the test (empty: no table, no type), dropped after."""
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_operators_starting_at_once_apply_each_migration_once(fresh_url: str) -> None:
    """Concurrent ``CREATE TABLE IF NOT EXISTS`` of the bookkeeping table could fail one of
    them on PostgreSQL's catalogue ("duplicate key value violates unique constraint
    pg_type_typname_nsp_index"): the whole migration runs under the advisory lock."""
    applied = await asyncio.gather(*(migrations.migrate_database(fresh_url) for _ in range(8)))

    names = [name for each in applied for name in each]
    assert sorted(names) == [name for _, name, _ in migrations.available()]

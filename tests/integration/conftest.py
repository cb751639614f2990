"""Fixtures of the integration tests: a migrated journal; for the relay tests a fresh outbox
table and topic, and relay settings."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from harness.outbox import (
    SCHEMA,
)
from sagaz_operator.adapters.postgres import migrations
from sagaz_operator.adapters.postgres.journal import Journal
from sagaz_operator.services.relay_config import RelaySettings


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_url)
    yield conn
    await conn.close()


@pytest.fixture
async def table(db: asyncpg.Connection) -> AsyncIterator[str]:
    name = f"outbox_{uuid.uuid4().hex[:10]}"
    await db.execute(SCHEMA.replace("sagaz_outbox", name))
    yield name
    await db.execute(f"DROP TABLE {name}; DROP FUNCTION {name}_notify()")


@pytest.fixture
def topic() -> str:
    return f"relay-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(postgres_url: str, kafka_bootstrap: str, table: str, topic: str) -> RelaySettings:
    return RelaySettings(
        database_url=postgres_url,
        bootstrap_servers=kafka_bootstrap,
        table=table,
        topic=topic,
        address=None,
        poll_seconds=0.5,
        rebalance_seconds=0.5,
        publish_timeout_seconds=5.0,
    )


@pytest.fixture
async def journal(postgres_url: str) -> AsyncIterator[Journal]:
    await migrations.migrate_database(postgres_url)
    opened = await Journal.open(postgres_url)
    yield opened
    await opened.close()

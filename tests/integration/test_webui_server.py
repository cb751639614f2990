"""The web UI's server side against a real PostgreSQL: pages served from the package with a
strict Content-Security-Policy, counts by phase, a live feed that reports journal writes
(only to the pages they concern, a bounded number of pages), a capped input, and a clear
answer where the Kubernetes lists cannot be had."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from harness.stack import free_port
from sagaz_operator.adapters.postgres import migrations
from sagaz_operator.adapters.postgres.journal import Journal, SagaRecord
from sagaz_operator.adapters.readapi import server
from sagaz_operator.adapters.webui import feed, routes
from sagaz_operator.domain import events as ev

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEFINITION = {"steps": [{"name": "charge", "action": {"http": {"url": "http://pay.example/"}}}]}


def record(namespace: str, name: str, **extra: Any) -> SagaRecord:
    return SagaRecord(
        uid=str(uuid.uuid4()),
        namespace=namespace,
        name=name,
        definition_name="pay",
        definition_generation=1,
        definition=DEFINITION,
        input=extra.get("input", {}),
    )


@pytest.fixture(scope="module")
async def journal(postgres_url: str) -> AsyncIterator[Journal]:
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    opened = await Journal.open(postgres_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="module")
async def api(postgres_url: str, journal: Journal) -> AsyncIterator[str]:
    port = free_port()
    running = await server.ApiServer.start(
        postgres_url, host="127.0.0.1", port=port, clock=lambda: T0
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await running.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def started(journal: Journal, saga: SagaRecord) -> None:
    await journal.start(saga, first=ev.SagaStarted(at=T0), phase="Running", finished=False)


async def next_event(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    """The data of the next ``sagas`` event on a server-sent event stream."""
    kind = None
    async with asyncio.timeout(30):
        async for raw in stream.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "sagas":
                data: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return data
    raise AssertionError("the stream ended")


async def test_pages_come_from_the_package_with_a_policy_that_runs_only_own_scripts(
    api: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{api}/") as answer:
        assert answer.status == 200
        assert answer.content_type == "text/html"
        page = await answer.text()
        policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert '<script type="module" src="/ui/js/main.js">' in page
    for asset in sorted((routes.STATIC / "js").glob("*.js")):
        async with http.get(f"{api}/ui/js/{asset.name}") as answer:
            assert answer.status == 200, asset.name
            # Browsers run ES modules only with a JavaScript MIME type.
            assert answer.content_type in ("text/javascript", "application/javascript")
    async with http.get(f"{api}/ui/../routes.py") as answer:
        assert answer.status in (403, 404)


async def test_counts_by_phase_follow_the_filter(
    api: str, http: aiohttp.ClientSession, journal: Journal
) -> None:
    namespace = f"count-{uuid.uuid4().hex[:6]}"
    for i in range(3):
        await started(journal, record(namespace, f"s{i}"))
    done = record(namespace, "done")
    await journal.start(done, first=ev.SagaStarted(at=T0), phase="Succeeded", finished=True)
    async with http.get(f"{api}/ui/api/phases?namespace={namespace}") as answer:
        assert await answer.json() == {"phases": {"Running": 3, "Succeeded": 1}, "total": 4}
    await started(journal, record(namespace, "done"))  # created again: the newest run counts
    async with http.get(f"{api}/ui/api/phases?namespace={namespace}") as answer:
        assert await answer.json() == {"phases": {"Running": 4}, "total": 4}
    async with http.get(f"{api}/ui/api/phases?namespace={namespace}&definition=other") as answer:
        assert await answer.json() == {"phases": {}, "total": 0}


async def test_the_feed_reports_journal_writes_to_the_pages_they_concern(
    api: str, http: aiohttp.ClientSession, journal: Journal
) -> None:
    mine, other = f"feed-{uuid.uuid4().hex[:6]}", f"feed-{uuid.uuid4().hex[:6]}"
    async with http.get(f"{api}/ui/api/events?namespace={mine}") as stream:
        assert stream.content_type == "text/event-stream"
        # Connected means the poller has its cursor: every write from now on is reported.
        await stream.content.readuntil(b": connected\n\n")
        await started(journal, record(other, "elsewhere"))
        saga = record(mine, "here")
        await started(journal, saga)
        data = await next_event(stream)
        while not data["changed"] and data["more"]:
            # Other tests' sagas changed in the same window, past one poll's limit: such an
            # event only tells the page to reload; ours follows in a later one.
            data = await next_event(stream)
    assert [(c["namespace"], c["name"], c["phase"]) for c in data["changed"]] == [
        (mine, "here", "Running")
    ]


async def test_pages_beyond_the_bound_are_refused_not_queued(
    api: str, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "MAX_SUBSCRIBERS", 1)
    async with http.get(f"{api}/ui/api/events") as first:
        await first.content.readuntil(b": connected\n\n")
        async with http.get(f"{api}/ui/api/events") as second:
            assert second.status == 503
            assert "already listening" in (await second.json())["error"]


async def test_a_large_input_is_capped_and_says_so(
    api: str, http: aiohttp.ClientSession, journal: Journal
) -> None:
    namespace = f"input-{uuid.uuid4().hex[:6]}"
    await started(journal, record(namespace, "big", input={"blob": "x" * 100_000}))
    async with http.get(f"{api}/ui/api/namespaces/{namespace}/sagas/big/input") as answer:
        body = await answer.json()
    assert body["truncated"] is True
    assert len(body["text"]) == routes.MAX_INPUT_CHARS
    assert body["size"] > 100_000
    async with http.get(f"{api}/ui/api/namespaces/{namespace}/sagas/nope/input") as answer:
        assert answer.status == 404


async def test_without_a_kubernetes_client_the_lists_say_why(
    api: str, http: aiohttp.ClientSession
) -> None:
    for path in ("sagadefinitions", "outbox"):
        async with http.get(f"{api}/ui/api/{path}") as answer:
            assert answer.status == 503
            assert "no Kubernetes client" in (await answer.json())["error"]


async def test_closing_the_server_ends_open_streams_at_once(
    postgres_url: str, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    running = await server.ApiServer.start(
        postgres_url, host="127.0.0.1", port=port, clock=lambda: T0
    )
    async with http.get(f"http://127.0.0.1:{port}/ui/api/events") as stream:
        await stream.content.readuntil(b": connected\n\n")
        # Without ending the streams first, aiohttp's shutdown waits 60 s for the handler.
        await asyncio.wait_for(running.close(), 20)
        assert await stream.content.read() == b""

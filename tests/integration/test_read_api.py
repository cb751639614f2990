"""The read API against a real PostgreSQL: paging 10,000 sagas, history and outbox order,
errors that say what is wrong, and an OpenAPI document that matches the routes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from harness.stack import free_port
from sagaz_operator.adapters.postgres import migrations
from sagaz_operator.adapters.postgres.journal import Journal, SagaRecord
from sagaz_operator.adapters.readapi import openapi, server
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import StepName

pytestmark = pytest.mark.postgres

NAMESPACE = f"readapi-{uuid.uuid4().hex[:6]}"
COUNT = 10_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEFINITION = {
    "steps": [
        {
            "name": "charge",
            "action": {
                "http": {
                    "url": "http://pay.example/charge",
                    "headersFrom": [
                        {"name": "Authorization", "secretKeyRef": {"name": "pay", "key": "token"}}
                    ],
                }
            },
        }
    ]
}


@pytest.fixture(scope="module")
async def api(postgres_url: str) -> AsyncIterator[str]:
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrations.migrate(conn)
        await conn.copy_records_to_table(
            "sagaz_sagas",
            columns=[
                "uid",
                "namespace",
                "name",
                "definition_name",
                "definition_generation",
                "definition",
                "input",
                "phase",
            ],
            records=[
                (
                    uuid.uuid4(),
                    NAMESPACE,
                    f"saga-{i:05d}",
                    "bulk",
                    1,
                    "{}",
                    "{}",
                    "Succeeded" if i % 10 else "Running",
                )
                for i in range(COUNT)
            ],
        )
    finally:
        await conn.close()
    port = free_port()
    running = await server.ApiServer.start(
        postgres_url, host="127.0.0.1", port=port, clock=lambda: T0 + timedelta(hours=1)
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await running.close()


async def get(url: str) -> tuple[int, dict[str, Any]]:
    import asyncio

    def fetch() -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return await asyncio.to_thread(fetch)


async def test_lists_ten_thousand_sagas_in_keyset_pages_each_exactly_once(api: str) -> None:
    seen: list[str] = []
    token: str | None = None
    started = time.perf_counter()
    pages = 0
    while True:
        url = f"{api}/api/v1/namespaces/{NAMESPACE}/sagas?limit=500"
        status, body = await get(url + (f"&continue={token}" if token else ""))
        assert status == 200
        seen += [item["name"] for item in body["items"]]
        pages += 1
        token = body["continue"]
        if token is None:
            break
    elapsed = time.perf_counter() - started
    print(f"\n{COUNT} sagas in {pages} pages of 500: {elapsed * 1000:.0f} ms")
    assert seen == [f"saga-{i:05d}" for i in range(COUNT)]


async def test_filters_by_phase_and_definition(api: str) -> None:
    status, body = await get(
        f"{api}/api/v1/sagas?namespace={NAMESPACE}&phase=Running&definition=bulk&limit=500"
    )
    assert status == 200
    _, rest = await get(
        f"{api}/api/v1/sagas?namespace={NAMESPACE}&phase=Running&definition=bulk&limit=500"
        f"&continue={body['continue']}"
    )
    items = body["items"] + rest["items"]
    assert len(items) == COUNT // 10
    assert {item["phase"] for item in items} == {"Running"}
    assert rest["continue"] is not None  # exactly a full page: the next one is empty
    _, none = await get(f"{api}/api/v1/sagas?namespace={NAMESPACE}&definition=other")
    assert none == {"items": [], "continue": None}


async def test_history_and_outbox_come_in_journal_order_page_by_page(
    api: str, postgres_url: str
) -> None:
    journal = await Journal.open(postgres_url)
    uid = str(uuid.uuid4())
    record = SagaRecord(
        uid=uid,
        namespace=NAMESPACE,
        name="long",
        definition_name="",
        definition_generation=1,
        definition=DEFINITION,
        input={"orderId": "7"},
    )
    try:
        await journal.start(record, first=ev.SagaStarted(at=T0), phase="Running", finished=False)
        events: list[ev.Event] = []
        for attempt in range(1, 126):
            at = T0 + timedelta(seconds=attempt)
            events += [
                ev.StepDispatched(at=at, step=StepName("charge"), attempt=attempt),
                ev.StepFailed(
                    at=at,
                    step=StepName("charge"),
                    attempt=attempt,
                    error=f"HTTP 503 #{attempt}",
                    retryable=True,
                ),
            ]
        version = 1
        for start in range(0, len(events), 50):  # several transactions, as a real run has
            chunk = events[start : start + 50]
            version = await journal.append(
                record, version=version, events=chunk, phase="Running", finished=False
            )
    finally:
        await journal.close()
    base = f"{api}/api/v1/namespaces/{NAMESPACE}/sagas/long"

    history: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        _, page = await get(f"{base}/history?limit=40" + (f"&continue={token}" if token else ""))
        history += page["items"]
        token = page["continue"]
        if token is None:
            break
    assert [item["seq"] for item in history] == list(range(1, 252))
    assert history[0]["type"] == "SagaStarted"
    assert history[-1]["type"] == "StepFailed"
    assert history[-1]["event"]["attempt"] == 125
    assert history[-1]["event"]["error"] == "HTTP 503 #125"

    outbox: list[dict[str, Any]] = []
    token = None
    while True:
        _, page = await get(f"{base}/outbox?limit=100" + (f"&continue={token}" if token else ""))
        outbox += page["items"]
        token = page["continue"]
        if token is None:
            break
    assert [item["seq"] for item in outbox] == list(range(1, 252))
    assert outbox[1]["eventType"] == "StepDispatched"
    assert {item["status"] for item in outbox} == {"pending"}

    status, saga = await get(base)
    assert status == 200
    assert saga["uid"] == uid
    assert saga["status"]["phase"] == "Running"
    assert saga["status"]["steps"][0]["attempts"] == 125

    _, definition = await get(f"{base}/definition")
    assert definition["spec"] == DEFINITION


async def test_lists_the_newest_run_of_a_name_unless_asked_for_all(
    api: str, postgres_url: str
) -> None:
    namespace = f"runs-{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(postgres_url)
    try:
        for phase, created in (("Compensated", T0), ("Running", T0 + timedelta(minutes=5))):
            await conn.execute(
                """INSERT INTO sagaz_sagas (uid, namespace, name, definition_name,
                       definition_generation, definition, input, phase, created_at)
                   VALUES ($1, $2, 'again', 'd', 1, '{}', '{}', $3, $4)""",
                uuid.uuid4(),
                namespace,
                phase,
                created,
            )
    finally:
        await conn.close()

    _, newest = await get(f"{api}/api/v1/namespaces/{namespace}/sagas")
    _, every = await get(f"{api}/api/v1/namespaces/{namespace}/sagas?allRuns=true&limit=1")
    _, rest = await get(
        f"{api}/api/v1/namespaces/{namespace}/sagas?allRuns=true&limit=1&continue={every['continue']}"
    )

    assert [item["phase"] for item in newest["items"]] == ["Running"]
    assert [item["phase"] for item in every["items"] + rest["items"]] == ["Compensated", "Running"]
    _, one = await get(f"{api}/api/v1/namespaces/{namespace}/sagas/again")
    assert one["phase"] == "Running"


async def test_errors_say_what_is_wrong(api: str) -> None:
    status, body = await get(f"{api}/api/v1/namespaces/{NAMESPACE}/sagas/nope")
    assert (status, body["error"]) == (404, f"no saga nope in namespace {NAMESPACE} in the journal")
    status, body = await get(f"{api}/api/v1/sagas?limit=0")
    assert status == 400
    assert "limit" in body["error"]
    status, body = await get(f"{api}/api/v1/sagas?continue=garbage")
    assert status == 400
    assert "continue" in body["error"]
    status, _ = await get(f"{api}/api/v1/namespaces/{NAMESPACE}/sagas/long?uid=not-a-uid")
    assert status == 400


async def test_openapi_document_describes_every_route(api: str) -> None:
    status, document = await get(f"{api}/api/openapi.json")
    assert status == 200
    assert document == openapi.DOCUMENT
    app = server.application(None, clock=lambda: T0)  # type: ignore[arg-type]
    routes = {resource.canonical for resource in app.router.resources()}
    assert routes == set(document["paths"])

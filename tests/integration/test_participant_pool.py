"""The participants' shared HTTP client against a real server on loopback: it bounds how many
requests are at the server at once, and every way a request can end gives its connection back
(with one connection, a lost one would hang the next request)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from harness.participants import ParticipantServer, Respond, Stall, refused_url
from sagaz_operator.adapters import participants


@pytest.fixture
async def server() -> AsyncIterator[ParticipantServer]:
    async with ParticipantServer() as running:
        yield running


async def status(client: aiohttp.ClientSession, url: str) -> int:
    async with client.get(url) as response:
        await response.read()
        return response.status


async def test_no_more_requests_reach_the_server_at_once_than_there_are_connections(
    server: ParticipantServer,
) -> None:
    gate = server.on("/slow", Stall())
    async with participants.new_client(max_connections=2) as client, asyncio.timeout(10):
        calls = [asyncio.create_task(status(client, server.url("/slow"))) for _ in range(6)]
        await server.wait_for_requests("/slow", 2)
        gate.release()
        statuses = await asyncio.gather(*calls)

    assert statuses == [200] * 6
    seen = server.requests("/slow")
    for request in seen:
        at_the_server = [
            other
            for other in seen
            if other.received_at <= request.received_at < (other.responded_at or float("inf"))
        ]
        assert len(at_the_server) <= 2


async def test_every_ending_gives_the_connection_back(server: ParticipantServer) -> None:
    server.on("/ok", Respond(json={"ok": True}))
    server.on("/stuck", Stall())
    async with participants.new_client(max_connections=1) as client, asyncio.timeout(10):
        with pytest.raises(aiohttp.ClientConnectorError):  # failed before any response
            await status(client, refused_url())
        with pytest.raises(TimeoutError):  # timed out waiting for the response
            async with asyncio.timeout(0.2):
                await status(client, server.url("/stuck"))
        async with client.get(server.url("/ok")):  # closed unread
            pass
        waiting = asyncio.create_task(status(client, server.url("/stuck")))
        await server.wait_for_requests("/stuck", 2)
        waiting.cancel()  # cancelled while its response was awaited
        with pytest.raises(asyncio.CancelledError):
            await waiting

        async with client.get(server.url("/ok")) as response:
            answer = await response.json()

    assert answer == {"ok": True}


async def test_a_request_cancelled_while_waiting_for_a_connection_takes_none(
    server: ParticipantServer,
) -> None:
    gate = server.on("/slow", Stall())
    async with participants.new_client(max_connections=1) as client, asyncio.timeout(10):
        first = asyncio.create_task(status(client, server.url("/slow")))
        await server.wait_for_requests("/slow", 1)
        queued = asyncio.create_task(status(client, server.url("/slow")))
        for _ in range(20):  # let it get as far as it can: the queue for the one connection
            await asyncio.sleep(0)
        assert len(server.requests("/slow")) == 1
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.release()
        assert await first == 200

        assert await status(client, server.url("/slow")) == 200
    assert len(server.requests("/slow")) == 2  # the cancelled one never went out

"""The bounded HTTP transport against a real server on loopback: it bounds how many requests
are at the server at once, and every way a request can end gives its place back (with one
place, a lost one would hang the next request)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from harness.participants import ParticipantServer, Respond, Stall, refused_url
from sagaz_operator.adapters.bounded import BoundedTransport


def bounded_client(places: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=bounded(places))


def bounded(places: int) -> BoundedTransport:
    limits = httpx.Limits(max_connections=places, max_keepalive_connections=places)
    return BoundedTransport(limits=limits, verify=False)


@pytest.fixture
async def server() -> AsyncIterator[ParticipantServer]:
    async with ParticipantServer() as running:
        yield running


async def test_no_more_requests_reach_the_server_at_once_than_there_are_places(
    server: ParticipantServer,
) -> None:
    gate = server.on("/slow", Stall())
    async with bounded_client(2) as client, asyncio.timeout(10):
        calls = [asyncio.create_task(client.get(server.url("/slow"))) for _ in range(6)]
        await server.wait_for_requests("/slow", 2)
        gate.release()
        responses = await asyncio.gather(*calls)

    assert [r.status_code for r in responses] == [200] * 6
    seen = server.requests("/slow")
    for request in seen:
        at_the_server = [
            other
            for other in seen
            if other.received_at <= request.received_at < (other.responded_at or float("inf"))
        ]
        assert len(at_the_server) <= 2


async def test_every_ending_gives_the_place_back(server: ParticipantServer) -> None:
    server.on("/ok", Respond(json={"ok": True}))
    server.on("/stuck", Stall())
    async with bounded_client(1) as client, asyncio.timeout(10):
        with pytest.raises(httpx.ConnectError):  # failed before any response
            await client.get(refused_url())
        with pytest.raises(httpx.ReadTimeout):  # timed out waiting for the response
            await client.get(server.url("/stuck"), timeout=0.2)
        async with client.stream("GET", server.url("/ok")):  # streamed, closed unread
            pass
        waiting = asyncio.create_task(client.get(server.url("/stuck")))
        await server.wait_for_requests("/stuck", 2)
        waiting.cancel()  # cancelled while its response was awaited
        with pytest.raises(asyncio.CancelledError):
            await waiting

        response = await client.get(server.url("/ok"))

    assert response.json() == {"ok": True}


async def test_a_request_cancelled_while_waiting_for_a_place_takes_none(
    server: ParticipantServer,
) -> None:
    gate = server.on("/slow", Stall())
    transport = bounded(1)
    async with httpx.AsyncClient(transport=transport) as client, asyncio.timeout(10):
        first = asyncio.create_task(client.get(server.url("/slow")))
        await server.wait_for_requests("/slow", 1)
        request = httpx.Request("GET", server.url("/slow"))
        queued = asyncio.create_task(transport.handle_async_request(request))
        await asyncio.sleep(0)  # the task runs until it waits: nothing is awaited before that
        assert transport.waiting == 1
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.release()
        assert (await first).status_code == 200

        assert transport.waiting == 0
        assert (await client.get(server.url("/slow"))).status_code == 200
    assert len(server.requests("/slow")) == 2  # the cancelled one never went out

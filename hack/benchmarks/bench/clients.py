"""The two HTTP clients the in-process systems call the participant with.

The same pool bound (100 connections, as the operator's participant client) for both, so the
difference between them is the client's own cost.
"""

from __future__ import annotations

from typing import Protocol

import aiohttp
import httpx

from bench.workload import Call, StepFailedError

POOL = 100


class Poster(Protocol):
    async def post(self, call: Call) -> None:
        """POST the call; raise ``StepFailedError`` on a non-2xx answer."""

    async def close(self) -> None: ...


class AiohttpPoster:
    def __init__(self) -> None:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL))

    async def post(self, call: Call) -> None:
        async with self._session.post(call.url, json=call.body, headers=call.headers) as answer:
            await answer.read()
            if answer.status >= 300:
                raise StepFailedError(call.step, answer.status)

    async def close(self) -> None:
        await self._session.close()


class HttpxPoster:
    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        self._client = httpx.AsyncClient(limits=limits, timeout=30)

    async def post(self, call: Call) -> None:
        answer = await self._client.post(call.url, json=call.body, headers=call.headers)
        if answer.status_code >= 300:
            raise StepFailedError(call.step, answer.status_code)

    async def close(self) -> None:
        await self._client.aclose()


def poster(name: str) -> Poster:
    return AiohttpPoster() if name == "aiohttp" else HttpxPoster()

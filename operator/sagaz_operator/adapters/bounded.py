"""An httpx transport that lets only as many requests into its pool as it has connections.

httpcore's connection pool, each time a connection frees up, matches every queued request
against every connection. With hundreds of sagas calling at once the queue is hundreds long,
that matching costs CPU quadratic in it, and the event loop that also serves Kopf, status
writes and timers starves: measured with 500 concurrent sagas, throughput fell to a ninth.
Requests beyond the pool's size wait here instead, on a plain semaphore, and a waiting request
costs nothing.

A request holds its place until its response is closed, since that is when the connection goes
back to the pool; httpx closes every response it reads in full, and ``stream()`` closes on exit.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable

import httpx


class BoundedTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool) -> None:
        if limits.max_connections is None:
            raise ValueError("a bounded transport needs limits.max_connections")
        self._inner = httpx.AsyncHTTPTransport(limits=limits, verify=verify)
        self._places = asyncio.Semaphore(limits.max_connections)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Requests waiting for a place right now."""
        return self._waiting

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._waiting += 1
        try:
            await self._places.acquire()
        finally:
            self._waiting -= 1
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._places.release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, self._places.release)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its request's place back when it is closed, once."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()

"""Real HTTP participants for tests: a small HTTP/1.1 server on 127.0.0.1 that does as it is told.

Tests of the operator talk to participants over real sockets (DESIGN.md section 6), so the
client's timeouts, connection errors and header handling are exercised for real. The server
runs inside the test's event loop on a random free port; per path (and optionally per saga or
idempotency-key prefix) it follows a script of behaviours::

    async with ParticipantServer() as server:
        server.on("/reserve", Respond(json={"reservationId": "r-1"}))
        server.on("/charge", Fail(503, times=2, retry_after=1), Respond(json={"paid": True}))
        server.on("/charge", Fail(402), saga="order-2")  # only for saga order-2
        stall = server.on("/ship", Stall())  # until stall.release() or the server closes
        ...
        await server.wait_for_requests("/charge", 3)
        assert {r.idempotency_key for r in server.requests("/charge")} == {...}

Each behaviour applies ``times`` times (``None``: for ever), then the next one does; once a
script is used up the server answers ``200 {}``. A path with no script answers 404, so a typo
in a test shows up as a failed step rather than as a silent success. Every request is recorded
with its headers, body and times before the server answers, so a test can wait for a request
that is still stalled.

It is built on ``asyncio.start_server`` -- httpx has no server side, and a new dependency is not
worth ~60 lines of parsing. It handles what the operator's client sends: one request per
connection (answers carry ``Connection: close``) with a ``Content-Length`` body.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeAlias


@dataclass
class Recorded:
    """One request as the server saw it; times are the event loop's clock (``loop.time()``)."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    received_at: float
    responded_at: float | None = None  # None while stalled, or if never answered
    status: int | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def idempotency_key(self) -> str | None:
        return self.header("Idempotency-Key")

    @property
    def saga(self) -> str | None:
        return self.header("X-Saga-Name")

    @property
    def attempt(self) -> int | None:
        value = self.header("X-Saga-Attempt")
        return None if value is None else int(value)


@dataclass(frozen=True)
class Respond:
    """Answer ``status`` with ``json`` (or the raw ``body``) and extra ``headers``."""

    json: Any = field(default_factory=dict)
    status: int = 200
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    times: int | None = None


@dataclass(frozen=True)
class Fail:
    """Answer an error ``status``, with ``Retry-After`` (seconds or an HTTP date) if given."""

    status: int
    times: int | None = None
    retry_after: float | str | None = None
    json: Any = None  # default: {"error": "<status> <phrase>"}


@dataclass(frozen=True)
class Redirect:
    """Answer a redirect to ``location``."""

    location: str
    status: int = 302
    times: int | None = None


class Stall:
    """Hold the request for ``seconds`` (``None``: until ``release()``), then behave as ``then``."""

    def __init__(
        self,
        seconds: float | None = None,
        *,
        then: Behaviour | None = None,
        times: int | None = None,
    ) -> None:
        self.seconds = seconds
        self.then: Behaviour = then if then is not None else Respond()
        self.times = times
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def wait(self) -> None:
        if self.seconds is None:
            await self._released.wait()
            return
        with suppress(TimeoutError):
            async with asyncio.timeout(self.seconds):
                await self._released.wait()


Behaviour: TypeAlias = Respond | Fail | Redirect | Stall


@dataclass
class _Entry:
    behaviour: Behaviour
    remaining: int | None  # None: for ever


@dataclass
class _Rule:
    script: list[_Entry]
    saga: str | None
    key_prefix: str | None

    def matches(self, request: Recorded) -> bool:
        if self.saga is not None and request.saga != self.saga:
            return False
        key = request.idempotency_key or ""
        return self.key_prefix is None or key.startswith(self.key_prefix)

    def next(self) -> Behaviour:
        for entry in self.script:
            if entry.remaining is None:
                return entry.behaviour
            if entry.remaining > 0:
                entry.remaining -= 1
                return entry.behaviour
        return Respond()


class ParticipantServer:
    """An HTTP server on 127.0.0.1; use it as ``async with ParticipantServer() as server``."""

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str | None, str | None], _Rule] = {}
        self._recorded: list[Recorded] = []
        self._changed = asyncio.Condition()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ParticipantServer:
        # A backlog for bursts, as a real server has: with asyncio's default of 100, hundreds of
        # sagas connecting at once overflow it and their connects wait for SYN retransmission.
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()  # stalled requests never answer
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(
        self, path: str, *script: Behaviour, saga: str | None = None, key_prefix: str | None = None
    ) -> Behaviour:
        """Follow ``script`` for ``path`` (only for saga ``saga`` / keys starting with
        ``key_prefix``, if given), replacing any earlier script for the same selection.
        Returns the first behaviour, e.g. to ``release()`` a ``Stall``."""
        if not script:
            raise ValueError("a script needs at least one behaviour")
        entries = [_Entry(behaviour, behaviour.times) for behaviour in script]
        self._rules[(path, saga, key_prefix)] = _Rule(entries, saga, key_prefix)
        return script[0]

    def requests(self, path: str | None = None, *, saga: str | None = None) -> list[Recorded]:
        """The requests received so far, oldest first, optionally only for a path / saga."""
        return [
            request
            for request in self._recorded
            if (path is None or request.path == path) and (saga is None or request.saga == saga)
        ]

    async def wait_for_requests(
        self, path: str | None, count: int, *, saga: str | None = None, within: float = 10.0
    ) -> list[Recorded]:
        """Wait (at most ``within`` seconds) for at least ``count`` matching requests."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.requests(path, saga=saga)) >= count)
        return self.requests(path, saga=saga)

    # --- serving --------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await _read_request(reader)
            if request is None:
                return
            async with self._changed:
                self._recorded.append(request)
                self._changed.notify_all()
            behaviour = self._behaviour(request)
            while isinstance(behaviour, Stall):
                await behaviour.wait()
                behaviour = behaviour.then
            status, headers, body = _response(behaviour)
            request.responded_at = asyncio.get_running_loop().time()
            request.status = status
            writer.write(_encode(status, headers, body))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away; what it sent is recorded
        except asyncio.CancelledError:
            # Only __aexit__ cancels handlers: the connection is dropped unanswered. Ending
            # normally keeps asyncio's stream callback from logging the cancellation as an error.
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    def _behaviour(self, request: Recorded) -> Behaviour:
        rules = [rule for (path, *_), rule in self._rules.items() if path == request.path]
        rules.sort(key=lambda rule: rule.saga is None and rule.key_prefix is None)
        for rule in rules:  # specific selections first, then the path's general script
            if rule.matches(request):
                return rule.next()
        return Respond(status=404, json={"error": f"no behaviour for {request.path}"})


async def _read_request(reader: asyncio.StreamReader) -> Recorded | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # connected and left without a request
    received_at = asyncio.get_running_loop().time()
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise ConnectionError("chunked request bodies are not supported by the test server")
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    path, _, query = target.partition("?")
    return Recorded(method, path, query, headers, body, received_at)


def _response(behaviour: Behaviour) -> tuple[int, dict[str, str], bytes]:
    if isinstance(behaviour, Redirect):
        return behaviour.status, {"Location": behaviour.location}, b""
    if isinstance(behaviour, Fail):
        headers = {"Content-Type": "application/json"}
        if behaviour.retry_after is not None:
            retry_after = behaviour.retry_after
            headers["Retry-After"] = (
                f"{retry_after:g}" if isinstance(retry_after, int | float) else retry_after
            )
        payload = behaviour.json or {"error": f"{behaviour.status} {_phrase(behaviour.status)}"}
        return behaviour.status, headers, json.dumps(payload).encode()
    assert isinstance(behaviour, Respond)
    if behaviour.body is not None:
        return behaviour.status, dict(behaviour.headers), behaviour.body
    headers = {"Content-Type": "application/json", **behaviour.headers}
    if behaviour.status in (204, 304):
        return behaviour.status, dict(behaviour.headers), b""
    return behaviour.status, headers, json.dumps(behaviour.json).encode()


def _encode(status: int, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_phrase(status)}".rstrip()]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if status not in (204, 304) and not 100 <= status < 200:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def refused_url(path: str = "/") -> str:
    """A loopback URL nothing listens on (the port was free a moment ago), for refused calls."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


@contextmanager
def unreachable_url(path: str = "/") -> Iterator[str]:
    """A loopback URL where connecting hangs: the listening socket never accepts and its
    backlog is full, so the kernel drops further connection attempts (as a black hole would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            yield f"http://127.0.0.1:{port}{path}"
        finally:
            for filler in fillers:
                filler.close()

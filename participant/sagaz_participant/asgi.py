"""ASGI adapter: idempotent HTTP for Starlette, FastAPI or any ASGI application.

``IdempotencyMiddleware(app, idempotency=...)`` handles every HTTP request that carries an
``Idempotency-Key`` through ``Idempotency.run``: the application runs inside the transaction
(its writes go through ``sagaz_participant.connection()``), its response is buffered and
stored, and a repeat gets the stored response with ``Idempotent-Replayed: true``. Requests
without the header pass straight through, unless ``require_key`` is set (then 400).

Buffering is the price of storing an answer: streamed responses arrive whole.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sagaz_participant.answers import Answer, storable_headers
from sagaz_participant.errors import InvalidKeyError
from sagaz_participant.idempotency import Idempotency, Result
from sagaz_participant.schema import Connection

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"idempotency-key"
REPLAYED = "idempotent-replayed"


class IdempotencyMiddleware:
    def __init__(
        self, app: ASGIApp, *, idempotency: Idempotency, require_key: bool = False
    ) -> None:
        self.app = app
        self.idempotency = idempotency
        self.require_key = require_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(HEADER)
        if raw is None:
            if self.require_key:
                await _send(send, _refusal("an Idempotency-Key header is required"), ())
                return
            await self.app(scope, receive, send)
            return

        async def handle(conn: Connection) -> Answer:
            return await self._call_app(scope, receive)

        try:
            result = await self.idempotency.run(raw.decode("latin-1"), handle)
        except InvalidKeyError as error:
            await _send(send, _refusal(str(error)), ())
            return
        await _send(send, result.answer, _extra(result))

    async def _call_app(self, scope: Scope, receive: Receive) -> Answer:
        status = 500
        headers: list[tuple[str, str]] = []
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers.extend(
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                )
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        return Answer(status=status, body=bytes(body), headers=storable_headers(headers))


def _extra(result: Result) -> tuple[tuple[str, str], ...]:
    return ((REPLAYED, "true"),) if result.replayed else ()


def _refusal(message: str) -> Answer:
    return Answer(
        status=400,
        body=json.dumps({"error": "invalid-idempotency-key", "message": message}).encode(),
        headers=(("content-type", "application/json"),),
    )


async def _send(send: Send, answer: Answer, extra: tuple[tuple[str, str], ...]) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (*answer.headers, *extra)]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})

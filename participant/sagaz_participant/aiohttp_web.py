"""aiohttp adapter: ``app.middlewares.append(aiohttp_web.middleware(idempotency))``.

Same contract as the ASGI adapter: a request with an ``Idempotency-Key`` runs its handler
inside ``Idempotency.run`` (writes through ``sagaz_participant.connection()``), the response
is stored, a repeat gets it back with ``Idempotent-Replayed: true``. An ``HTTPException`` the
handler raises is an answer like any other (a raised 409 is stored; a raised 503 is not).
Handlers must return a plain ``web.Response`` (a stream cannot be stored).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from sagaz_participant.answers import Answer, storable_headers
from sagaz_participant.errors import InvalidKeyError
from sagaz_participant.idempotency import Idempotency
from sagaz_participant.schema import Connection

AiohttpHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, AiohttpHandler], Awaitable[web.StreamResponse]]


def middleware(idempotency: Idempotency, *, require_key: bool = False) -> Middleware:
    @web.middleware
    async def idempotent(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            if require_key:
                return _refusal("an Idempotency-Key header is required")
            return await handler(request)

        async def handle(conn: Connection) -> Answer:
            try:
                response = await handler(request)
            except web.HTTPException as raised:
                return Answer(
                    status=raised.status,
                    body=raised.text.encode() if raised.text else b"",
                    headers=storable_headers(list(raised.headers.items())),
                )
            if not isinstance(response, web.Response):
                raise TypeError("an idempotent aiohttp handler must return a web.Response")
            body = response.body if isinstance(response.body, bytes) else b""
            return Answer(
                status=response.status,
                body=body,
                headers=storable_headers(list(response.headers.items())),
            )

        try:
            result = await idempotency.run(key, handle)
        except InvalidKeyError as error:
            return _refusal(str(error))
        headers = dict(result.answer.headers)
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        return web.Response(status=result.answer.status, body=result.answer.body, headers=headers)

    return idempotent


def _refusal(message: str) -> web.Response:
    return web.json_response({"error": "invalid-idempotency-key", "message": message}, status=400)

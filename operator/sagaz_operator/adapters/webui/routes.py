"""The web UI on the read API's server: its static pages, and the few answers only it needs.

The pages (``static/``: HTML, ES modules, CSS; no build step, no CDN) call the versioned read
API (``/api/v1``) for sagas, journals and definition snapshots, and ``/ui/api/`` for what
only a console wants: counts by phase, the live change feed (server-sent events), a saga's
input, the SagaDefinitions and OutboxWorkers as the apiserver has them, and the operator's own
outbox backlog. Those are internal to the UI and may change with it; like the rest of the
server they only read.

Every page is sent with a Content-Security-Policy that allows only the operator's own
scripts and styles: even if data slipped into the DOM as markup, no injected script could run.
(The pages build their DOM with ``textContent``; the policy is the second fence.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from sagaz_operator.adapters.kube import Kube, KubeError
from sagaz_operator.adapters.postgres.overview import Change, Changes, Overview
from sagaz_operator.adapters.postgres.reads import Reads, SagaFilter
from sagaz_operator.adapters.webui import catalog
from sagaz_operator.adapters.webui.feed import Feed, TooManySubscribersError, as_json

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: A saga's input is user data of any size: the page shows at most this much of it.
MAX_INPUT_CHARS = 64 * 1024
#: Seconds between keep-alive comments on an idle event stream (proxies close silent ones).
KEEPALIVE = 15.0

_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Ui:
    """The UI's routes and the resources they hold (a small pool, the feed's poller)."""

    def __init__(self, *, reads: Reads, overview: Overview, kube: Kube | None) -> None:
        self._reads, self._overview, self._kube = reads, overview, kube
        self._feed = Feed(overview)

    @classmethod
    async def open(cls, database_url: str, *, reads: Reads, kube: Kube | None) -> Ui:
        return cls(reads=reads, overview=await Overview.open(database_url), kube=kube)

    def register(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)
        app.router.add_get("/ui/api/phases", self.phases)
        app.router.add_get("/ui/api/events", self.events)
        app.router.add_get("/ui/api/namespaces/{namespace}/sagas/{name}/input", self.input)
        app.router.add_get("/ui/api/sagadefinitions", self.definitions)
        app.router.add_get("/ui/api/outbox", self.outbox)
        app.router.add_static("/ui/", STATIC)
        app.on_response_prepare.append(_secure)

    async def close(self) -> None:
        """Ends the open event streams first, so the server's shutdown need not wait them out."""
        await self._feed.close()
        await self._overview.close()

    async def index(self, _: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def phases(self, request: web.Request) -> web.Response:
        counts = await self._overview.phases(_filter(request))
        return web.json_response({"phases": counts, "total": sum(counts.values())})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """``text/event-stream``: a ``sagas`` event whenever sagas matching the filter change."""
        try:
            async with self._feed.subscribe() as queue:
                return await self._stream(request, queue, _filter(request))
        except TooManySubscribersError as error:
            raise web.HTTPServiceUnavailable(reason=str(error)) from None

    async def _stream(
        self, request: web.Request, queue: asyncio.Queue[Changes | None], where: SagaFilter
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx ingress: do not buffer the stream
            }
        )
        await response.prepare(request)
        try:
            await response.write(b"retry: 3000\n: connected\n\n")
            while True:
                try:
                    changes = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if changes is None:  # the server is closing
                    break
                items = [as_json(c) for c in changes.items if _matches(where, c)]
                if items or changes.more:
                    body = json.dumps({"changed": items, "more": changes.more})
                    await response.write(f"event: sagas\ndata: {body}\n\n".encode())
        except ConnectionResetError:
            pass  # the page went away
        return response

    async def input(self, request: web.Request) -> web.Response:
        info = request.match_info
        detail = await self._reads.saga(info["namespace"], info["name"], request.query.get("uid"))
        if detail is None:
            raise web.HTTPNotFound(reason=f"no saga {info['name']} in {info['namespace']}")
        text = json.dumps(detail.input, indent=2, ensure_ascii=False)
        return web.json_response(
            {
                "uid": detail.row.uid,
                "text": text[:MAX_INPUT_CHARS],
                "truncated": len(text) > MAX_INPUT_CHARS,
                "size": len(text),
            }
        )

    async def definitions(self, _: web.Request) -> web.Response:
        listing = await self._list("sagadefinitions")
        return web.json_response({"items": [catalog.definition(item) for item in listing]})

    async def outbox(self, _: web.Request) -> web.Response:
        listing = await self._list("outboxworkers")
        own = await self._overview.own_outbox()
        return web.json_response(
            {
                "workers": [catalog.worker(item) for item in listing],
                "operator": {
                    "table": "sagaz_outbox",
                    "pendingEvents": own.pending,
                    "oldestPendingSeconds": round(own.oldest_pending_seconds, 1),
                    "deadEvents": own.dead,
                },
            }
        )

    async def _list(self, plural: str) -> list[dict[str, Any]]:
        """Every object of a sagaz.io kind the operator's credentials can list."""
        if self._kube is None:
            raise web.HTTPServiceUnavailable(reason="this server has no Kubernetes client")
        try:
            body = await self._kube.get(catalog.list_path(plural))
        except KubeError as error:
            logger.warning("UI: listing %s failed: %s", plural, error)
            raise web.HTTPBadGateway(reason=str(error)[:300]) from None
        items: list[dict[str, Any]] = (body or {}).get("items") or []
        return sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))


def _filter(request: web.Request) -> SagaFilter:
    query = request.query
    return SagaFilter(
        namespace=query.get("namespace") or None,
        phase=query.get("phase") or None,
        definition=query.get("definition") or None,
    )


def _matches(where: SagaFilter, change: Change) -> bool:
    """A change concerns a page if it is in its namespace and definition (any phase: a saga
    leaving the page's phase changes the page too)."""
    return (not where.namespace or where.namespace == change.namespace) and (
        not where.definition or where.definition == change.definition
    )


async def _secure(_: web.Request, response: web.StreamResponse) -> None:
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)

"""The read API's routes (aiohttp, already a Kopf dependency, so no second HTTP server stack).

Answers are JSON built from PostgreSQL alone (``adapters.postgres.reads``): the journal is the
source of truth, and a saga's status is recomputed from it with the engine's own fold and
projection, so it is never older than the journal (the Saga's ``.status`` may lag, and is gone
once the object is deleted; the journal stays). Lists are keyset-paged: an answer carries
``continue``, an opaque token for the next page, or null on the last one.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from sagaz_operator.adapters.kube import Kube
from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError
from sagaz_operator.adapters.postgres.reads import (
    JournalEntry,
    Key,
    NotAUidError,
    OutboxEntry,
    Reads,
    SagaDetail,
    SagaFilter,
    SagaRow,
)
from sagaz_operator.adapters.readapi import openapi
from sagaz_operator.adapters.webui.routes import Ui
from sagaz_operator.domain import codec, definitions, projection, state
from sagaz_operator.domain.model import Definition, Json, SagaUid
from sagaz_operator.errors import ConfigError, DefinitionError

logger = logging.getLogger(__name__)

DEFAULT_PAGE = 100
PREFIX = "/api/v1"
_SAGA = PREFIX + "/namespaces/{namespace}/sagas/{name}"

Clock = Callable[[], datetime]
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequestError(ValueError):
    """The request's parameters are wrong; the message says which."""


class NotFoundError(LookupError):
    """No such saga in the journal."""


def application(reads: Reads, *, clock: Clock) -> web.Application:
    """The API as an aiohttp application (served by ``serve``; tests may mount it as they like)."""
    api = _Api(reads, clock)
    app = web.Application(middlewares=[_errors])
    app.router.add_get("/api/openapi.json", api.openapi)
    app.router.add_get(PREFIX + "/sagas", api.sagas)
    app.router.add_get(PREFIX + "/namespaces/{namespace}/sagas", api.sagas)
    app.router.add_get(_SAGA, api.saga)
    app.router.add_get(_SAGA + "/history", api.history)
    app.router.add_get(_SAGA + "/definition", api.definition)
    app.router.add_get(_SAGA + "/outbox", api.outbox)
    return app


class ApiServer:
    """The API served on ``host:port`` with its own small database pool, until ``close``."""

    def __init__(self, reads: Reads, runner: web.AppRunner, ui: Ui) -> None:
        self._reads, self._runner, self._ui = reads, runner, ui

    @classmethod
    async def start(
        cls,
        database_url: str,
        *,
        host: str,
        port: int,
        clock: Clock,
        kube: Kube | None = None,
    ) -> ApiServer:
        """Listening when it returns; ``ConfigError`` if the address cannot be bound.

        The web UI is served beside the API (``/``); with ``kube`` it also lists the
        SagaDefinitions and OutboxWorkers.
        """
        reads = await Reads.open(database_url)
        app = application(reads, clock=clock)
        ui = await Ui.open(database_url, reads=reads, kube=kube)
        ui.register(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            await runner.cleanup()
            await ui.close()
            await reads.close()
            raise ConfigError(f"SAGAZ_API_ADDRESS {host}:{port}: {error}") from error
        logger.info("serving the read API on http://%s:%d%s and its web UI", host, port, PREFIX)
        return cls(reads, runner, ui)

    async def close(self) -> None:
        await self._ui.close()  # ends the UI's event streams, which would hold the shutdown
        await self._runner.cleanup()
        await self._reads.close()


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (BadRequestError, NotAUidError) as error:
        return _problem(400, str(error))
    except NotFoundError as error:
        return _problem(404, str(error))
    except DatabaseUnavailableError as error:
        logger.warning("read API: database unavailable: %s", error)
        return _problem(503, "the database is unavailable; try again")
    except web.HTTPException as error:
        if error.status >= 400:
            return _problem(error.status, error.reason)
        raise


class _Api:
    def __init__(self, reads: Reads, clock: Clock) -> None:
        self._reads, self._clock = reads, clock

    async def openapi(self, _: web.Request) -> web.Response:
        return web.json_response(openapi.DOCUMENT)

    async def sagas(self, request: web.Request) -> web.Response:
        query = request.query
        where = SagaFilter(
            namespace=request.match_info.get("namespace") or query.get("namespace"),
            phase=query.get("phase"),
            definition=query.get("definition"),
            all_runs=query.get("allRuns", "").lower() == "true",
        )
        limit = _limit(query)
        after = _key(query.get("continue"))
        rows = await self._reads.sagas(where, limit=limit, after=after)
        token = None
        if rows and len(rows) == limit:
            last = rows[-1]
            token = _token([last.namespace, last.name, last.created_at.isoformat(), last.uid])
        return _json({"items": [_saga_summary(row) for row in rows], "continue": token})

    async def saga(self, request: web.Request) -> web.Response:
        detail = await self._detail(request)
        entries = await self._whole_journal(detail.row.uid)
        body = _saga_summary(detail.row)
        body["status"] = self._status(detail, entries)
        return _json(body)

    async def history(self, request: web.Request) -> web.Response:
        detail = await self._detail(request)
        limit = _limit(request.query)
        after = _seq(request.query.get("continue"))
        entries = await self._reads.journal(detail.row.uid, after=after, limit=limit)
        token = str(entries[-1].seq) if len(entries) == limit else None
        return _json(
            {
                "uid": detail.row.uid,
                "version": detail.row.version,
                "items": [_entry(entry) for entry in entries],
                "continue": token,
            }
        )

    async def definition(self, request: web.Request) -> web.Response:
        detail = await self._detail(request)
        return _json(
            {
                "uid": detail.row.uid,
                "name": detail.row.definition_name or None,
                "generation": detail.row.definition_generation,
                "spec": detail.definition,
            }
        )

    async def outbox(self, request: web.Request) -> web.Response:
        detail = await self._detail(request)
        limit = _limit(request.query)
        after = _seq(request.query.get("continue"))
        version = detail.row.version
        rows = await self._reads.outbox(detail.row.uid, version=version, after=after, limit=limit)
        last = min(version, after + limit)
        return _json(
            {
                "uid": detail.row.uid,
                "version": version,
                "items": [_outbox(row) for row in rows],
                "continue": str(last) if last < version else None,
            }
        )

    async def _detail(self, request: web.Request) -> SagaDetail:
        info = request.match_info
        detail = await self._reads.saga(info["namespace"], info["name"], request.query.get("uid"))
        if detail is None:
            raise NotFoundError(
                f"no saga {info['name']} in namespace {info['namespace']} in the journal"
            )
        return detail

    async def _whole_journal(self, uid: str) -> list[JournalEntry]:
        entries: list[JournalEntry] = []
        while True:
            page = await self._reads.journal(
                uid, after=entries[-1].seq if entries else 0, limit=500
            )
            entries += page
            if len(page) < 500:
                return entries

    def _status(self, detail: SagaDetail, entries: list[JournalEntry]) -> dict[str, Json]:
        current = state.replay(
            state.initial(uid=SagaUid(detail.row.uid), definition=_definition(detail)),
            [codec.decode(dict(entry.event)) for entry in entries],
        )
        return projection.status(
            current,
            now=self._clock(),
            definition_name=detail.row.definition_name,
            definition_generation=detail.row.definition_generation,
        )


def _definition(detail: SagaDetail) -> Definition:
    """The snapshot the saga runs; an empty one for a saga rejected before it had one."""
    if not detail.definition:
        return Definition(steps=())
    try:
        return definitions.load(detail.definition)
    except DefinitionError:
        return Definition(steps=())


def _saga_summary(row: SagaRow) -> dict[str, Json]:
    return {
        "uid": row.uid,
        "namespace": row.namespace,
        "name": row.name,
        "definition": {
            "name": row.definition_name or None,
            "generation": row.definition_generation,
        },
        "phase": row.phase,
        "journalLength": row.version,
        "progress": row.progress,
        "startedAt": _time(row.started_at),
        "createdAt": _time(row.created_at),
        "updatedAt": _time(row.updated_at),
        "finishedAt": _time(row.finished_at),
    }


def _entry(entry: JournalEntry) -> dict[str, Json]:
    event = dict(entry.event)
    kind = event.pop("type")
    return {"seq": entry.seq, "recordedAt": _time(entry.recorded_at), "type": kind, "event": event}


def _outbox(row: OutboxEntry) -> dict[str, Json]:
    return {
        "seq": row.seq,
        "id": row.id,
        "eventType": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "lastError": row.last_error,
        "createdAt": _time(row.created_at),
        "publishedAt": _time(row.published_at),
    }


def _limit(query: Any) -> int:
    text = query.get("limit")
    if text is None:
        return DEFAULT_PAGE
    if not text.isdigit() or not 1 <= int(text) <= 500:
        raise BadRequestError(f"limit must be a whole number from 1 to 500, not {text!r}")
    return int(text)


def _seq(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise BadRequestError(f"continue is not a token this API gave out: {token!r}")
    return int(token)


def _token(key: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def _key(token: str | None) -> Key | None:
    if token is None:
        return None
    try:
        namespace, name, created_at, uid = json.loads(base64.urlsafe_b64decode(token.encode()))
        return Key(
            namespace=str(namespace),
            name=str(name),
            created_at=datetime.fromisoformat(created_at),
            uid=str(uid),
        )
    except (ValueError, binascii.Error, TypeError):
        raise BadRequestError(f"continue is not a token this API gave out: {token!r}") from None


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _json(body: dict[str, Json]) -> web.Response:
    return web.json_response(body)


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)

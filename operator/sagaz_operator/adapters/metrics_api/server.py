"""The external metrics API over HTTPS (aiohttp), for the API server's aggregation layer.

Routes (documents from ``domain.external_metrics``):

- ``/apis/external.metrics.k8s.io/v1beta1``: discovery, for any proxied user;
- ``/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/sagaz_outbox_pending_events``
  ``?labelSelector=outboxworker=<name>``: the value, if a SubjectAccessReview allows the user
  ``get`` on that metric in ``ns`` (the HPA controller's bootstrap role does);
- ``/openapi/v2``, ``/openapi/v3``: empty documents, so the aggregator's OpenAPI merge finds one;
- ``/healthz``, ``/livez``, ``/readyz``: ``ok``, without authentication (probes).

The value is computed on each request from the outbox table (``pending``), so it is never
older than the HPA's own sync period; a worker that cannot be read is an error the HPA shows
(``FailedGetExternalMetric`` with our message), never a made-up zero.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from aiohttp import web

from sagaz_operator.adapters.metrics_api import trust
from sagaz_operator.domain import external_metrics, workers
from sagaz_operator.domain.external_metrics import Identity, RequestHeaders
from sagaz_operator.errors import ConfigError, SecretNotOptedInError

logger = logging.getLogger(__name__)

PREFIX = "/apis/" + external_metrics.GROUP_VERSION
#: Pending events of the OutboxWorker (namespace, name); ``LookupError`` if it does not exist.
PendingEvents = Callable[[str, str], Awaitable[int]]
Clock = Callable[[], datetime]


class Authorizer(Protocol):
    async def allowed(self, who: Identity, *, namespace: str, metric: str) -> tuple[bool, str]: ...


def application(
    *,
    headers: RequestHeaders,
    pending: PendingEvents,
    authorizer: Authorizer | None,
    clock: Clock,
) -> web.Application:
    """The routes; ``authorizer`` None lets every authenticated proxied user read (tests)."""
    api = _Api(headers=headers, pending=pending, authorizer=authorizer, clock=clock)
    app = web.Application()
    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, _ok)
    app.router.add_get(PREFIX, api.discovery)
    app.router.add_get("/openapi/v2", api.openapi_v2)
    app.router.add_get("/openapi/v3", api.openapi_v3)
    app.router.add_get(PREFIX + "/namespaces/{namespace}/{metric}", api.metric)
    return app


class MetricsServer:
    """Serving on ``host:port`` until ``close``."""

    def __init__(self, runner: web.AppRunner) -> None:
        self._runner = runner

    @classmethod
    async def start(
        cls, app: web.Application, *, host: str, port: int, tls: ssl.SSLContext
    ) -> MetricsServer:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=tls).start()
        except OSError as error:
            await runner.cleanup()
            raise ConfigError(f"SAGAZ_EXTERNAL_METRICS_ADDRESS {host}:{port}: {error}") from error
        logger.info("serving the external metrics API on https://%s:%d%s", host, port, PREFIX)
        return cls(runner)

    async def close(self) -> None:
        await self._runner.cleanup()


async def _ok(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(external_metrics.status(code, reason, message), status=code)


class _Api:
    def __init__(
        self,
        *,
        headers: RequestHeaders,
        pending: PendingEvents,
        authorizer: Authorizer | None,
        clock: Clock,
    ) -> None:
        self._headers, self._pending = headers, pending
        self._authorizer, self._clock = authorizer, clock

    def _caller(self, request: web.Request) -> Identity | web.Response:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        found = external_metrics.identity(
            client_names=trust.common_names(peercert),
            headers=list(request.headers.items()),
            settings=self._headers,
        )
        if isinstance(found, str):
            logger.warning("external metrics API: refused %s: %s", request.path, found)
            return _status(401, "Unauthorized", found)
        return found

    async def discovery(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        return web.json_response(external_metrics.resource_list())

    async def openapi_v2(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        info = {"title": "sagaz-operator external metrics", "version": external_metrics.VERSION}
        return web.json_response({"swagger": "2.0", "info": info, "paths": {}})

    async def openapi_v3(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        return web.json_response({"paths": {}})

    async def metric(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        namespace, metric = request.match_info["namespace"], request.match_info["metric"]
        if metric != workers.METRIC or not external_metrics.is_namespace(namespace):
            return _status(404, "NotFound", f"no external metric {metric!r} here")
        if self._authorizer is not None:
            allowed, reason = await self._authorizer.allowed(
                caller, namespace=namespace, metric=metric
            )
            if not allowed:
                return _status(
                    403,
                    "Forbidden",
                    f"{caller.user} may not get {external_metrics.GROUP}/{metric} in namespace"
                    f" {namespace}{': ' + reason if reason else ''}",
                )
        try:
            worker = external_metrics.worker_of(request.query.get("labelSelector", ""))
        except external_metrics.SelectorError as error:
            return _status(400, "BadRequest", str(error))
        try:
            pending = await self._pending(namespace, worker)
        except LookupError as error:
            return _status(404, "NotFound", str(error))
        except SecretNotOptedInError as error:
            return _status(503, "ServiceUnavailable", str(error))
        except Exception as error:  # the database or the API server is down: say so
            logger.warning("external metrics API: %s/%s: %s", namespace, worker, error)
            return _status(
                503,
                "ServiceUnavailable",
                f"cannot read the outbox of {namespace}/{worker}: {error}",
            )
        return web.json_response(
            external_metrics.value_list(worker=worker, pending=pending, now=self._clock())
        )

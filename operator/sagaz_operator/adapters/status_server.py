"""A worker's small HTTP face: ``/metrics`` (Prometheus) and ``/healthz`` (200 or 503)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import prometheus_client
from aiohttp import web

from sagaz_operator.errors import ConfigError

logger = logging.getLogger(__name__)

#: The health check: whether the worker is healthy, and a JSON-able account of why.
Health = Callable[[], tuple[bool, dict[str, Any]]]


async def serve(host: str, port: int, health: Health) -> web.AppRunner:
    """Serve until the returned runner's ``cleanup()``; ``ConfigError`` if the port is taken."""

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(
            body=prometheus_client.generate_latest(),
            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST},
        )

    async def health_page(_: web.Request) -> web.Response:
        healthy, details = health()
        return web.json_response(details, status=200 if healthy else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/healthz", health_page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise ConfigError(f"SAGAZ_WORKER_ADDRESS {host}:{port}: {error}") from error
    logger.info("serving /metrics and /healthz on %s:%d", host, port)
    return runner

"""A real Jaeger (v2, ``hack/jaeger.sh``) for the tracing tests: OTLP/HTTP in, query API out.

One Jaeger per test session, in memory, on free loopback ports; ``hack/jaeger.sh path``
builds the binary into the cache first if this machine has none. Tests export to
``otlp_endpoint`` (as ``OTEL_EXPORTER_OTLP_ENDPOINT``) and read traces back through the query
API's ``/api/traces/<id>``, waiting for the spans they expect rather than sleeping: export is
batched and asynchronous, so "not there yet" is normal for a moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness import stack


@dataclass(frozen=True)
class Span:
    """One span as Jaeger's query API returns it, with its tags as a dict."""

    span_id: str
    trace_id: str
    name: str
    parent_id: str | None
    tags: dict[str, Any]
    service: str
    start_us: int
    duration_us: int


class Jaeger:
    def __init__(self, *, binary: str, config: str, log: Path) -> None:
        self.otlp_port, self.query_port = stack.free_port(), stack.free_port()
        self._ports = {
            "JAEGER_OTLP_HTTP_PORT": str(self.otlp_port),
            "JAEGER_QUERY_PORT": str(self.query_port),
            "JAEGER_QUERY_GRPC_PORT": str(stack.free_port()),
            "JAEGER_HEALTH_PORT": str(stack.free_port()),
        }
        self._command = [binary, "--config", config]
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    def start(self) -> None:
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                self._command,
                env={**os.environ, **self._ports},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            stack.wait_until_listening(self.otlp_port, self.process, within=60)
            stack.wait_until_listening(self.query_port, self.process, within=60)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"Jaeger did not start ({error}); see {self._log}") from error

    def stop(self) -> None:
        stack.stop_process(self.process)

    def trace(self, trace_id: str) -> list[Span]:
        """The spans Jaeger holds for ``trace_id`` now ([] while it has none)."""
        url = f"http://127.0.0.1:{self.query_port}/api/traces/{trace_id}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise
        spans: list[Span] = []
        for trace in body.get("data") or []:
            processes = trace.get("processes") or {}
            for span in trace["spans"]:
                parents = [
                    r["spanID"] for r in span.get("references") or [] if r["refType"] == "CHILD_OF"
                ]
                spans.append(
                    Span(
                        span_id=span["spanID"],
                        trace_id=span["traceID"],
                        name=span["operationName"],
                        parent_id=parents[0] if parents else None,
                        tags={tag["key"]: tag["value"] for tag in span.get("tags") or []},
                        service=processes.get(span.get("processID"), {}).get("serviceName", ""),
                        start_us=span["startTime"],
                        duration_us=span["duration"],
                    )
                )
        return spans

    async def wait_for(
        self, trace_id: str, done: Callable[[list[Span]], bool], *, within: float = 60
    ) -> list[Span]:
        """The trace's spans once ``done(spans)`` holds; polls the query API (it has no watch)."""
        spans: list[Span] = []
        try:
            async with asyncio.timeout(within):
                while True:
                    spans = await asyncio.to_thread(self.trace, trace_id)
                    if done(spans):
                        return spans
                    await asyncio.sleep(0.3)
        except TimeoutError:
            names = sorted(span.name for span in spans)
            raise AssertionError(
                f"trace {trace_id} not complete after {within}s: {names}"
            ) from None


def trace_id(saga_uid: str) -> str:
    return saga_uid.replace("-", "")


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """Jaeger for the session; built first (once per machine) if the cache has none."""
    binary = stack.hack("jaeger.sh", "path")
    config = stack.hack("jaeger.sh", "config")
    running = Jaeger(
        binary=binary, config=config, log=tmp_path_factory.mktemp("jaeger") / "jaeger.log"
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()

"""The tracing port: what the executor tells a tracer, and the tracer that does nothing.

A saga is one trace; its id is the saga's uid (16 random bytes, just what a W3C trace id is),
so every process that ever runs the saga — the first operator, one restarted after a crash,
another replica after a hand-over — writes into the same trace without storing anything more.
The trace holds:

- one **saga span** per round (the first run, then one per applied ``spec.retry``), exported
  when the round ends (the saga finishes), with its start and end read from the journal. Its
  span id is derived from the uid and the round, so an attempt made by any process can name it
  as its parent before it exists; a span that only the process that started it could end
  would be lost at every restart.
- one **attempt span** per attempt of a step's action or compensation, a child of the saga
  span, with its outcome. The ``traceparent`` sent to the participant names this span.

Tracing is off unless the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; then the OpenTelemetry adapter
(``adapters.otel``, extra ``tracing``) is imported. Off, nothing of OpenTelemetry is imported
and an attempt costs one ``traceparent`` string, as before tracing existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from sagaz_operator.adapters import tracing as trace_context
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Attempt
from sagaz_operator.domain.state import SagaState
from sagaz_operator.errors import ConfigError


class AttemptSpan(Protocol):
    """One attempt in flight."""

    @property
    def traceparent(self) -> str:
        """The W3C ``traceparent`` to send to the participant: this attempt's span."""
        ...

    def end(self, outcome: ev.Event | None) -> None:
        """The attempt's outcome event, or None when it was cut off (cancelled, stopping)."""
        ...


class Tracer(Protocol):
    def attempt(self, attempt: Attempt, *, round: int, resumed: bool) -> AttemptSpan:
        """Start the span of ``attempt``; ``resumed`` when it was dispatched by an earlier run
        (the operator restarted while it was in flight)."""
        ...

    def saga_finished(self, *, saga_name: str, namespace: str, state: SagaState) -> None:
        """The saga reached a terminal phase: export its saga span for the current round."""
        ...

    def close(self) -> None:
        """Flush what is still buffered (the operator stops)."""
        ...


@dataclass(frozen=True, slots=True)
class _Untraced:
    traceparent: str

    def end(self, outcome: ev.Event | None) -> None:
        pass


class NoTracing:
    """Tracing off: participants still get a ``traceparent`` in the saga's trace."""

    def attempt(self, attempt: Attempt, *, round: int, resumed: bool) -> AttemptSpan:
        return _Untraced(trace_context.new_traceparent(trace_id(attempt.saga_uid)))

    def saga_finished(self, *, saga_name: str, namespace: str, state: SagaState) -> None:
        pass

    def close(self) -> None:
        pass


NO_TRACING = NoTracing()


def trace_id(saga_uid: str) -> str:
    """The saga's trace id: its uid's 32 hex digits."""
    return saga_uid.replace("-", "").lower()


def enabled(env: Mapping[str, str]) -> bool:
    """Whether the standard OpenTelemetry variables ask for traces to be exported over OTLP."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporters == "none":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return bool(endpoint and endpoint.strip())


def from_environment(env: Mapping[str, str]) -> Tracer:
    """The tracer the environment asks for; ``ConfigError`` when it cannot be built."""
    if not enabled(env):
        return NO_TRACING
    try:
        from sagaz_operator.adapters import otel
    except ImportError as error:
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: install "
            f"the operator with its tracing extra (pip install 'sagaz-operator[tracing]'): {error}"
        ) from error
    return otel.OtelTracer.from_environment()

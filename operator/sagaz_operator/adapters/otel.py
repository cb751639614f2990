"""The tracer on the OpenTelemetry SDK, exporting over OTLP/HTTP (protobuf).

Imported only when tracing is on (``services.tracing.from_environment``): it needs the
``tracing`` extra. Everything the SDK reads from the standard variables it reads here too:
``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT``, ``..._HEADERS``, ``..._TIMEOUT``, ``OTEL_SERVICE_NAME``
and ``OTEL_RESOURCE_ATTRIBUTES`` (the service is ``sagaz-operator`` unless they name one),
``OTEL_TRACES_SAMPLER(_ARG)``, ``OTEL_BSP_*`` for the batching.

Spans are exported from a background thread in batches, so an attempt costs the executor a
span object and no I/O. The saga span is created after the fact with the times the journal
holds and a span id derived from the saga's uid (see ``services.tracing``): the SDK lets a
span's times be given, and its ids come from the provider's id generator, which is told the
ids to use for that one span.
"""

from __future__ import annotations

import contextvars
import hashlib
from datetime import datetime

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from sagaz_operator import __version__
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Attempt
from sagaz_operator.domain.state import SagaState

DEFAULT_SERVICE_NAME = "sagaz-operator"
SCOPE = "sagaz_operator"

_forced: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "sagaz_forced_span_ids", default=None
)


class _Ids(RandomIdGenerator):
    """Random ids, except for the span being created under ``_forced``."""

    def generate_trace_id(self) -> int:
        forced = _forced.get()
        return forced[0] if forced is not None else super().generate_trace_id()

    def generate_span_id(self) -> int:
        forced = _forced.get()
        return forced[1] if forced is not None else super().generate_span_id()


def saga_span_id(saga_uid: str, round: int) -> int:
    """The saga span's id for one round: the same in every process, never zero."""
    digest = hashlib.sha256(f"{saga_uid}/saga/{round}".encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def _trace_id(saga_uid: str) -> int:
    return int(saga_uid.replace("-", ""), 16)


def _nanos(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


class _AttemptSpan:
    __slots__ = ("_span", "traceparent")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        context = span.get_span_context()
        self.traceparent = (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
        )

    def end(self, outcome: ev.Event | None) -> None:
        span = self._span
        match outcome:
            case ev.StepSucceeded() | ev.CompensationSucceeded():
                span.set_attribute("sagaz.attempt.outcome", "succeeded")
                span.set_status(Status(StatusCode.OK))
            case ev.StepFailed() | ev.CompensationFailed():
                span.set_attribute("sagaz.attempt.outcome", "failed")
                span.set_attribute("sagaz.attempt.retryable", outcome.retryable)
                if isinstance(outcome, ev.StepFailed):
                    span.set_attribute("sagaz.attempt.outcome_unknown", outcome.outcome_unknown)
                span.set_status(Status(StatusCode.ERROR, outcome.error))
            case ev.StepCancelled():  # FailFast, an abort: its effect is unknown, compensated
                span.set_attribute("sagaz.attempt.outcome", "cancelled")
            case _:
                # The operator stops (or was killed) with it in flight: the next run resumes it.
                span.set_attribute("sagaz.attempt.outcome", "interrupted")
        span.end()


class OtelTracer:
    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer(SCOPE, __version__)

    @classmethod
    def from_environment(cls) -> OtelTracer:
        """Batches exported over OTLP/HTTP, all configured by the standard variables."""
        return cls.with_processor(BatchSpanProcessor(OTLPSpanExporter()))

    @classmethod
    def with_processor(cls, processor: SpanProcessor) -> OtelTracer:
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
        provider = TracerProvider(resource=resource, id_generator=_Ids())
        provider.add_span_processor(processor)
        return cls(provider)

    def _saga_context(self, saga_uid: str, round: int) -> Context:
        """The (not yet exported) saga span as the parent of an attempt's span."""
        trace_id = _trace_id(saga_uid)
        # Sampled as the saga span itself will be: the sampler decides by the trace id.
        decision = self._provider.sampler.should_sample(None, trace_id, "saga").decision
        sampled = decision is Decision.RECORD_AND_SAMPLE
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        parent = SpanContext(
            trace_id=trace_id,
            span_id=saga_span_id(saga_uid, round),
            is_remote=False,
            trace_flags=flags,
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    def attempt(self, attempt: Attempt, *, round: int, resumed: bool) -> _AttemptSpan:
        span = self._tracer.start_span(
            f"{attempt.step} {attempt.purpose}",
            context=self._saga_context(attempt.saga_uid, round),
            kind=SpanKind.CLIENT,
            attributes={
                "sagaz.saga.uid": attempt.saga_uid,
                "sagaz.saga.name": attempt.saga_name,
                "sagaz.saga.namespace": attempt.namespace,
                "sagaz.step": attempt.step,
                "sagaz.purpose": attempt.purpose,
                "sagaz.attempt": attempt.number,
                "sagaz.idempotency_key": attempt.idempotency_key,
                "sagaz.attempt.resumed": resumed,
            },
        )
        return _AttemptSpan(span)

    def saga_finished(self, *, saga_name: str, namespace: str, state: SagaState) -> None:
        if state.started_at is None or state.finished_at is None or state.outcome is None:
            return  # rejected before it started: no step ran, there is nothing to trace
        token = _forced.set((_trace_id(state.uid), saga_span_id(state.uid, state.round)))
        try:
            span = self._tracer.start_span(
                "saga",
                context=Context(),
                kind=SpanKind.INTERNAL,
                start_time=_nanos(state.round_started_at or state.started_at),
                attributes={
                    "sagaz.saga.uid": state.uid,
                    "sagaz.saga.name": saga_name,
                    "sagaz.saga.namespace": namespace,
                    "sagaz.saga.phase": state.outcome.value,
                    "sagaz.saga.round": state.round,
                    "sagaz.saga.message": state.message,
                },
            )
        finally:
            _forced.reset(token)
        if state.outcome is ev.Outcome.SUCCEEDED:
            span.set_status(Status(StatusCode.OK))
        else:
            span.set_status(Status(StatusCode.ERROR, state.message or state.outcome.value))
        span.end(end_time=_nanos(state.finished_at))

    def close(self) -> None:
        self._provider.shutdown()

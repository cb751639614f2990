"""What tracing costs an attempt: the executor's tracer calls, off and on, in one process.

    .venv/bin/python hack/benchmarks/tracing_overhead.py --attempts 100000

Off is ``services.tracing.NO_TRACING`` (what the operator runs without
``OTEL_EXPORTER_OTLP_ENDPOINT``): one ``traceparent`` string per attempt, as before tracing
existed. On is the OpenTelemetry tracer with the real batching processor in front of an
exporter that drops what it gets, so the figure is the CPU an attempt's span costs the event
loop (creating, ending, queueing it), not the network. Prints microseconds per attempt.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from sagaz_operator.adapters import otel
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Attempt
from sagaz_operator.services import tracing

UID = "6f1c1d2e-0000-4000-8000-00000000000b"


class _Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_attempt(tracer: tracing.Tracer, attempts: int) -> float:
    attempt = Attempt(
        namespace="ns", saga_name="s", saga_uid=UID, step="a", purpose="action", number=1
    )
    outcome = ev.CompensationSucceeded(at=None, step="a", attempt=1)  # type: ignore[arg-type]
    started = time.process_time()
    for _ in range(attempts):
        span = tracer.attempt(attempt, round=0, resumed=False)
        assert span.traceparent
        span.end(outcome)
    return (time.process_time() - started) / attempts * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=100_000)
    args = parser.parse_args()
    on = otel.OtelTracer.with_processor(BatchSpanProcessor(_Dropped(), max_queue_size=1 << 20))
    off_us = per_attempt(tracing.NO_TRACING, args.attempts)
    on_us = per_attempt(on, args.attempts)
    on.close()
    print(f"tracing off: {off_us:.1f} us CPU per attempt")
    print(f"tracing on:  {on_us:.1f} us CPU per attempt (span created, ended, queued)")


if __name__ == "__main__":
    main()

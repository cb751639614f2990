"""Traces of a saga, in memory: the executor with the OpenTelemetry tracer and an in-memory
exporter (the SDK's own), crashed and restarted like ``test_sagas_in_memory``.

What is checked is the shape a trace backend shows: one trace per saga (its uid), a saga span
per round whose id every process derives alike, an attempt span per attempt under it with the
outcome, and the participant's ``traceparent`` naming the attempt's span. The export over OTLP
to a real Jaeger is ``tests/e2e/test_traces.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from harness import fakes
from harness.fakes import FAST, SHOP, Crash, Fault, http
from sagaz_operator.adapters import otel
from sagaz_operator.adapters.kube import resource_path
from sagaz_operator.domain.model import Attempt
from sagaz_operator.errors import PermanentParticipantError
from sagaz_operator.services import sagas, tracing
from sagaz_operator.services.executor import Controls
from sagaz_operator.services.statuses import StatusOutbox

UID = "6f1c1d2e-0000-4000-8000-00000000000a"
TRACE_ID = int(UID.replace("-", ""), 16)


class _Exported(InMemorySpanExporter):
    """The SDK's in-memory exporter, telling when it got spans (called on the loop's thread:
    the processor is the synchronous one)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.changed.set()
        return result


class World:
    def __init__(self, definition: dict[str, Any] = SHOP) -> None:
        self.store = fakes.MemoryStore()
        self.kube = fakes.Kube()
        self.runner = fakes.Runner()
        self.exported = _Exported()
        self.tracer = otel.OtelTracer.with_processor(SimpleSpanProcessor(self.exported))
        self.outbox = StatusOutbox(kube=self.kube)  # type: ignore[arg-type]
        self.runtime = sagas.SagaRuntime(
            kube=self.kube,  # type: ignore[arg-type]
            journal=self.store,
            locks=fakes.Locks(),
            runner=self.runner,  # type: ignore[arg-type]
            clock=fakes.Clock(),
            outbox=self.outbox,
            status_interval=0.0,
            crash_backoff=(0.0,),
            tracer=self.tracer,
        )
        path = resource_path("sagaz.io/v1alpha1", "sagadefinitions", "ns", "shop")
        self.kube.objects[path] = {
            "metadata": {"name": "shop", "generation": 1},
            "spec": definition,
        }
        self.body = {
            "metadata": {"uid": UID, "namespace": "ns", "name": "s1", "generation": 1},
            "spec": {"definitionRef": {"name": "shop"}},
        }

    async def run(self) -> None:
        await asyncio.wait_for(
            sagas.run(self.runtime, body=self.body, controls=Controls(), stopped=asyncio.Event()),
            timeout=10,
        )

    async def exported_saga_spans(self, count: int) -> None:
        """Wait (briefly: all in memory) until ``count`` saga spans were exported."""
        async with asyncio.timeout(10):
            while len(self.spans().get("saga", [])) < count:
                self.exported.changed.clear()
                await self.exported.changed.wait()

    def spans(self) -> dict[str, list[ReadableSpan]]:
        found: dict[str, list[ReadableSpan]] = {}
        for span in self.exported.get_finished_spans():
            found.setdefault(span.name, []).append(span)
        return found


def _fail(attempt: int) -> Any:
    raise PermanentParticipantError("card declined")


def _span_id(traceparent: str) -> int:
    return int(traceparent.split("-")[2], 16)


async def test_a_saga_that_succeeds_is_one_trace_of_its_attempts_under_its_saga_span() -> None:
    world = World()
    await world.run()

    spans = world.spans()
    assert sorted(spans) == ["a action", "b action", "saga"]
    [saga] = spans["saga"]
    assert saga.context is not None
    assert saga.parent is None
    assert saga.context.trace_id == TRACE_ID
    assert saga.context.span_id == otel.saga_span_id(UID, 0)
    assert saga.status.status_code is StatusCode.OK
    assert saga.attributes is not None
    assert saga.attributes["sagaz.saga.phase"] == "Succeeded"
    assert saga.start_time is not None
    assert saga.end_time is not None
    assert saga.start_time < saga.end_time  # the journal's times, not the export's
    sent = [_span_id(traceparent) for traceparent in world.runner.traceparents]
    for name, number in (("a action", 0), ("b action", 1)):
        [attempt] = spans[name]
        assert attempt.context is not None
        assert attempt.parent is not None
        assert attempt.context.trace_id == TRACE_ID
        assert attempt.parent.span_id == saga.context.span_id
        assert attempt.status.status_code is StatusCode.OK
        assert dict(attempt.attributes or {}) | {"sagaz.saga.uid": UID} == {
            "sagaz.saga.uid": UID,
            "sagaz.saga.name": "s1",
            "sagaz.saga.namespace": "ns",
            "sagaz.step": name[0],
            "sagaz.purpose": "action",
            "sagaz.attempt": 1,
            "sagaz.idempotency_key": f"{UID}/{name[0]}/action",
            "sagaz.attempt.resumed": False,
            "sagaz.attempt.outcome": "succeeded",
        }
        assert sent[number] == attempt.context.span_id  # the participant joins this span


async def test_a_compensated_saga_shows_the_failure_and_the_compensation() -> None:
    world = World()
    world.runner.answers["b"] = _fail
    await world.run()

    spans = world.spans()
    assert sorted(spans) == ["a action", "a compensation", "b action", "saga"]
    [failed] = spans["b action"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "card declined"
    assert failed.attributes is not None
    assert failed.attributes["sagaz.attempt.outcome"] == "failed"
    assert failed.attributes["sagaz.attempt.retryable"] is False
    [undo] = spans["a compensation"]
    assert undo.attributes is not None
    assert undo.attributes["sagaz.idempotency_key"] == f"{UID}/a/compensation"
    assert undo.status.status_code is StatusCode.OK
    [saga] = spans["saga"]
    assert saga.status.status_code is StatusCode.ERROR
    assert saga.attributes is not None
    assert saga.attributes["sagaz.saga.phase"] == "Compensated"
    assert undo.parent is not None
    assert saga.context is not None
    assert undo.parent.span_id == saga.context.span_id


async def test_a_restarted_operator_goes_on_in_the_same_trace_under_the_same_saga_span() -> None:
    world = World()
    # load, start, then the first append is StepDispatched(a): it commits, then the process dies.
    world.store.faults["append"].append(Fault(Crash(), after_write=True))
    with pytest.raises(Crash):
        await world.run()
    assert world.spans() == {}  # a was never called, and the round has not ended

    # The restarted operator: a new tracer, which knows nothing of the first one.
    world.runtime = dataclasses.replace(
        world.runtime,
        tracer=otel.OtelTracer.with_processor(SimpleSpanProcessor(world.exported)),
    )
    await world.run()

    spans = world.spans()
    assert sorted(spans) == ["a action", "b action", "saga"]
    [saga] = spans["saga"]
    [a], [b] = spans["a action"], spans["b action"]
    assert (a.attributes or {})["sagaz.attempt.resumed"] is True  # dispatched before the crash
    assert (b.attributes or {})["sagaz.attempt.resumed"] is False
    for span in (a, b):
        assert span.context is not None
        assert span.context.trace_id == TRACE_ID
        assert span.parent is not None
        assert saga.context is not None
        assert span.parent.span_id == saga.context.span_id == otel.saga_span_id(UID, 0)


class _UndoFailsOnce(fakes.Runner):
    """b's action fails; a's compensation fails the first time, then works."""

    async def run(self, *, purpose: str, step: str, attempt: int, **rest: Any) -> Any:
        if purpose == "compensation" and step == "a" and attempt == 1:
            self.calls.append((step, purpose, attempt))
            self.traceparents.append(rest["traceparent"])
            raise PermanentParticipantError("ledger offline")
        return await super().run(purpose=purpose, step=step, attempt=attempt, **rest)


async def test_each_retry_round_is_a_saga_span_of_its_own_with_its_attempts_under_it() -> None:
    world = World()
    world.runner = _UndoFailsOnce(answers={"b": _fail})
    world.runtime = dataclasses.replace(world.runtime, runner=world.runner)
    controls, stopped = Controls(), asyncio.Event()
    daemon = asyncio.create_task(
        sagas.run(world.runtime, body=world.body, controls=controls, stopped=stopped)
    )
    await world.exported_saga_spans(1)
    [first] = world.spans()["saga"]
    assert (first.attributes or {})["sagaz.saga.phase"] == "CompensationFailed"

    controls.update(suspend=False, abort=False, retry=1)  # kubectl sagaz retry
    await world.exported_saga_spans(2)
    stopped.set()
    await asyncio.wait_for(daemon, timeout=10)

    spans = world.spans()
    rounds = {(span.attributes or {})["sagaz.saga.round"]: span for span in spans["saga"]}
    assert sorted(rounds) == [0, 1]
    assert (rounds[1].attributes or {})["sagaz.saga.phase"] == "Compensated"
    assert rounds[1].context is not None
    assert rounds[0].context is not None
    assert rounds[1].context.span_id == otel.saga_span_id(UID, 1) != rounds[0].context.span_id
    assert rounds[1].start_time is not None
    assert rounds[0].end_time is not None
    assert rounds[1].start_time >= rounds[0].end_time  # the round starts at the retry
    parents = {
        (span.attributes or {})["sagaz.attempt"]: span.parent.span_id
        for span in spans["a compensation"]
        if span.parent is not None
    }
    assert parents == {1: rounds[0].context.span_id, 2: rounds[1].context.span_id}


class _SlowStalls(fakes.Runner):
    """``slow``'s action never answers (until it is cancelled)."""

    async def run(self, *, purpose: str, step: str, **rest: Any) -> Any:
        if purpose == "action" and step == "slow":
            await asyncio.Event().wait()
        return await super().run(purpose=purpose, step=step, **rest)


async def test_an_attempt_failfast_cancels_ends_its_span_as_cancelled() -> None:
    world = World(
        {
            "defaults": {"retry": FAST},
            "steps": [
                {"name": "a", "action": http("/a")},
                {"name": "slow", "action": http("/slow"), "compensation": http("/slow/undo")},
            ],
        }
    )
    world.runner = _SlowStalls(answers={"a": _fail})
    world.runtime = dataclasses.replace(world.runtime, runner=world.runner)
    await world.run()

    spans = world.spans()
    [slow] = spans["slow action"]
    assert (slow.attributes or {})["sagaz.attempt.outcome"] == "cancelled"
    [undo] = spans["slow compensation"]  # its effect was unknown: compensated
    assert (undo.attributes or {})["sagaz.attempt.outcome"] == "succeeded"
    assert (spans["saga"][0].attributes or {})["sagaz.saga.phase"] == "Compensated"


def test_tracing_is_off_without_an_otlp_endpoint_and_imports_nothing_of_opentelemetry() -> None:
    probe = (
        "import os, sys\n"
        "from sagaz_operator import cli\n"
        "from sagaz_operator.services import tracing\n"
        "tracer = tracing.from_environment(os.environ)\n"
        "assert tracer is tracing.NO_TRACING, tracer\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_the_standard_variables_switch_tracing(env: dict[str, str], on: bool) -> None:
    assert tracing.enabled(env) is on


def test_without_a_tracer_participants_still_get_a_traceparent_in_the_saga_trace() -> None:
    attempt = Attempt(
        namespace="ns", saga_name="s1", saga_uid=UID, step="a", purpose="action", number=1
    )
    span = tracing.NO_TRACING.attempt(attempt, round=0, resumed=False)
    version, trace_id, span_id, flags = span.traceparent.split("-")
    assert (version, int(trace_id, 16), flags) == ("00", TRACE_ID, "01")
    assert int(span_id, 16) != 0

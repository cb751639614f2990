"""Traces in a real tracer: operators export over OTLP to a real Jaeger, read back by its API.

The operators are real processes (``harness/isolated.py``) with ``OTEL_EXPORTER_OTLP_ENDPOINT``
pointing at the session's Jaeger (``harness/jaeger.py``); the participants are real HTTP
servers that record the ``traceparent`` they receive. What a user would look at in Jaeger is
what is checked: one trace per saga, the saga span at its root, each attempt and compensation
under it with its outcome, and the participant's call joined to its attempt's span -- across a
``kill -9`` of the operator, too.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.isolated import chain
from harness.jaeger import Jaeger, Span, trace_id
from harness.participants import Fail, ParticipantServer, Respond, Stall
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster


def tracing_env(jaeger: Jaeger, service: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # milliseconds: export soon, the test waits for it
    }


def by_name(spans: list[Span]) -> dict[str, list[Span]]:
    found: dict[str, list[Span]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def has(*names: str) -> Any:
    return lambda spans: all(name in by_name(spans) for name in names)


def sent_span_id(server: ParticipantServer, path: str, saga: str, uid: str) -> list[str]:
    """The span ids of the traceparents ``path`` received for ``saga``, checking their trace."""
    ids = []
    for request in server.requests(path, saga=saga):
        version, trace, span, flags = (request.header("traceparent") or "").split("-")
        assert (version, trace, flags) == ("00", trace_id(uid), "01")
        ids.append(span)
    return ids


async def test_a_saga_that_succeeds_and_one_compensated_are_traced_with_their_outcomes(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer, jaeger: Jaeger, own_namespace: str
) -> None:
    for path in ("/a", "/b", "/c", "/a/undo", "/b/undo"):
        shop.on(path, Respond(json={"done": path}))
    shop.on("/c", Fail(400, json={"error": "out of stock"}), saga="undone")
    service = f"sagaz-{own_namespace}"
    operators(**tracing_env(jaeger, service)).start()
    await own_sagas.define("chain", chain(shop))
    ok = await own_sagas.start("ok", {"definitionRef": {"name": "chain"}})
    undone = await own_sagas.start("undone", {"definitionRef": {"name": "chain"}})
    assert (await own_sagas.wait("ok"))["status"]["phase"] == "Succeeded"
    assert (await own_sagas.wait("undone"))["status"]["phase"] == "Compensated"

    uid = ok["metadata"]["uid"]
    spans = by_name(await jaeger.wait_for(trace_id(uid), has("saga", "c action")))
    assert sorted(spans) == ["a action", "b action", "c action", "saga"]
    [saga] = spans["saga"]
    assert saga.parent_id is None
    assert saga.service == service
    assert saga.tags["sagaz.saga.phase"] == "Succeeded"
    assert saga.tags["sagaz.saga.name"] == "ok"
    assert saga.tags["otel.status_code"] == "OK"
    for step in "abc":
        [attempt] = spans[f"{step} action"]
        assert attempt.parent_id == saga.span_id
        assert attempt.tags["sagaz.step"] == step
        assert attempt.tags["sagaz.attempt"] == 1
        assert attempt.tags["sagaz.attempt.outcome"] == "succeeded"
        assert attempt.tags["sagaz.idempotency_key"] == f"{uid}/{step}/action"
        assert sent_span_id(shop, f"/{step}", "ok", uid) == [attempt.span_id]
        assert saga.start_us <= attempt.start_us
        assert attempt.start_us + attempt.duration_us <= saga.start_us + saga.duration_us

    uid = undone["metadata"]["uid"]
    expected = ("saga", "c action", "a compensation", "b compensation")
    spans = by_name(await jaeger.wait_for(trace_id(uid), has(*expected)))
    assert sorted(spans) == [
        "a action",
        "a compensation",
        "b action",
        "b compensation",
        "c action",
        "saga",
    ]
    [saga] = spans["saga"]
    assert saga.tags["sagaz.saga.phase"] == "Compensated"
    assert saga.tags["otel.status_code"] == "ERROR"
    [failed] = spans["c action"]
    assert failed.tags["sagaz.attempt.outcome"] == "failed"
    assert failed.tags["otel.status_code"] == "ERROR"
    assert "400" in failed.tags["otel.status_description"]
    assert failed.tags["sagaz.attempt.retryable"] is False
    for step in "ab":
        [undo] = spans[f"{step} compensation"]
        assert undo.parent_id == saga.span_id
        assert undo.tags["sagaz.purpose"] == "compensation"
        assert undo.tags["sagaz.attempt.outcome"] == "succeeded"
        assert undo.tags["sagaz.idempotency_key"] == f"{uid}/{step}/compensation"
        assert sent_span_id(shop, f"/{step}/undo", "undone", uid) == [undo.span_id]
    # Compensation runs in reverse order: b's undo ends before a's starts.
    [undo_a], [undo_b] = spans["a compensation"], spans["b compensation"]
    assert undo_b.start_us + undo_b.duration_us <= undo_a.start_us


async def test_a_saga_across_a_kill_9_goes_on_in_the_same_trace(
    operators: Any, own_sagas: Sagas, shop: ParticipantServer, jaeger: Jaeger, own_namespace: str
) -> None:
    for path in ("/a", "/c"):
        shop.on(path, Respond(json={"done": path}))
    stall = shop.on("/b", Stall(times=1), Respond(json={"done": "/b"}))
    service = f"sagaz-{own_namespace}"
    first = operators(**tracing_env(jaeger, service))
    first.start()
    await own_sagas.define("chain", chain(shop))
    saga_object = await own_sagas.start("restarted", {"definitionRef": {"name": "chain"}})
    uid = saga_object["metadata"]["uid"]
    await shop.wait_for_requests("/b", 1, within=60)
    await jaeger.wait_for(trace_id(uid), has("a action"))  # exported before the crash
    first.kill()  # b's attempt is in flight: its span dies with the process, unexported
    stall.release()

    # Back under the killed one's replica id, as a container restarted in its pod: it takes
    # its own member Lease back at once instead of waiting out a dead member's Lease.
    operators(SAGAZ_REPLICA_ID=first.replica_id, **tracing_env(jaeger, service)).start()
    assert (await own_sagas.wait("restarted"))["status"]["phase"] == "Succeeded"

    spans = by_name(await jaeger.wait_for(trace_id(uid), has("saga", "c action")))
    assert sorted(spans) == ["a action", "b action", "c action", "saga"]
    [saga] = spans["saga"]
    [a], [b], [c] = spans["a action"], spans["b action"], spans["c action"]
    assert {a.parent_id, b.parent_id, c.parent_id} == {saga.span_id}  # one saga span, 2 processes
    assert a.tags["sagaz.attempt.resumed"] is False
    assert b.tags["sagaz.attempt.resumed"] is True  # the restarted operator's, same attempt
    assert b.tags["sagaz.attempt"] == 1
    first_call, second_call = sent_span_id(shop, "/b", "restarted", uid)
    assert second_call == b.span_id
    assert first_call != b.span_id  # the lost span of the killed operator
    assert saga.start_us <= a.start_us  # the saga span starts when the journal says it did

"""What the journal cannot store never wedges a saga: it ends with a message naming the field.

PostgreSQL's jsonb refuses a NUL character and lone UTF-16 surrogates. Before the fix, a Saga
whose input held one made its daemon fail every 60 s for ever, with no status at all; an
answer holding one did the same after the step had taken effect. Each test here ends in a
terminal phase on the real cluster, the real journal and real participants, and the session's
operator is still the same process afterwards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from harness import stack
from harness.operator import OperatorProcess
from harness.participants import Fail, ParticipantServer, Respond
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster

FAST = {"maxAttempts": 2, "backoff": {"initialSeconds": 0.1, "factor": 1, "maxSeconds": 0.1}}


def http(server: ParticipantServer, path: str) -> dict[str, Any]:
    return {"http": {"url": server.url(path)}}


def two_steps(server: ParticipantServer) -> dict[str, Any]:
    """a -> b, both compensated."""
    return {
        "defaults": {"timeoutSeconds": 10, "retry": FAST},
        "compensationRetry": FAST,
        "steps": [
            {"name": "a", "action": http(server, "/a"), "compensation": http(server, "/a/undo")},
            {
                "name": "b",
                "dependsOn": ["a"],
                "action": http(server, "/b"),
                "compensation": http(server, "/b/undo"),
            },
        ],
    }


def ready(definition: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (definition.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


@pytest.fixture(autouse=True)
def operator_never_restarts(operator: OperatorProcess) -> Any:
    assert operator.process is not None
    pid = operator.process.pid
    yield
    assert operator.process.pid == pid
    assert operator.process.poll() is None


@pytest.mark.parametrize(
    ("saga_input", "message"),
    [
        (
            {"customer": {"name": "Ann\u0000"}},
            "spec.input.customer.name: contains a NUL character, which cannot be stored",
        ),
        (
            {"lines": [{"sku": "ok"}, {"sku": "x\u0000"}]},
            "spec.input.lines[1].sku: contains a NUL character, which cannot be stored",
        ),
    ],
    ids=["nested-field", "list-item"],
)
async def test_input_the_journal_cannot_store_fails_at_once_naming_the_field(
    sagas: Sagas, participants: ParticipantServer, saga_input: Any, message: str
) -> None:
    await sagas.start("nul-input", {"definition": two_steps(participants), "input": saga_input})

    saga = await sagas.wait("nul-input", within=30)

    assert saga["status"]["phase"] == "Failed"
    assert saga["status"]["message"] == message
    assert participants.requests() == []
    reasons = await sagas.events("nul-input", until=lambda r: "SagaRejected" in r)
    assert ("SagaRejected", message) in reasons


async def test_an_inline_definition_the_journal_cannot_store_fails_naming_the_field(
    sagas: Sagas, participants: ParticipantServer
) -> None:
    spec = two_steps(participants)
    spec["steps"][0]["action"]["http"]["body"] = {"note": "x\u0000"}

    await sagas.start("nul-definition", {"definition": spec})
    saga = await sagas.wait("nul-definition", within=30)

    assert saga["status"]["phase"] == "Failed"
    assert saga["status"]["message"] == (
        "the inline definition cannot be stored: spec.definition.steps[0].action.http.body.note:"
        " contains a NUL character, which cannot be stored"
    )


async def test_a_sagadefinition_the_journal_cannot_store_is_not_ready(
    sagas: Sagas, participants: ParticipantServer
) -> None:
    spec = two_steps(participants)
    spec["steps"][1]["action"]["http"]["headers"] = {"X-Note": "a\u0000b"}
    await sagas.define("nul-def", spec)

    definition = await sagas.wait_for(
        lambda d: d["metadata"]["name"] == "nul-def" and ready(d) is not None,
        plural="sagadefinitions",
        within=30,
    )

    condition = ready(definition)
    assert condition is not None
    assert condition["status"] == "False"
    assert "spec.steps[1].action.http.headers" in condition["message"]
    assert "NUL character" in condition["message"]


@pytest.mark.parametrize(
    "body",
    [b'{"receipt": "paid\\u0000"}', b'{"receipt": "\\ud800"}'],
    ids=["nul", "lone-surrogate"],
)
async def test_an_answer_the_journal_cannot_store_fails_the_step_and_compensates_it(
    sagas: Sagas, participants: ParticipantServer, postgres_url: str, body: bytes
) -> None:
    participants.on("/a", Respond(json={"id": 1}))
    participants.on("/b", Respond(body=body, headers={"Content-Type": "application/json"}))
    participants.on("/a/undo", Respond())
    participants.on("/b/undo", Respond())

    await sagas.start("bad-output", {"definition": two_steps(participants)})
    saga = await sagas.wait("bad-output", within=60)

    assert saga["status"]["phase"] == "Compensated"
    b = next(s for s in saga["status"]["steps"] if s["name"] == "b")
    assert "output.receipt: contains" in b["error"]
    assert len(participants.requests("/b")) == 1  # not retried: it took effect
    assert len(participants.requests("/b/undo")) == 1  # so it is undone
    assert len(participants.requests("/a/undo")) == 1


async def test_huge_outputs_and_errors_are_capped_and_marked(
    sagas: Sagas, participants: ParticipantServer, postgres_url: str
) -> None:
    blob = "x" * (900 * 1024)  # under the participant limit (1 MiB), over the journal's
    size = len(json.dumps({"blob": blob}, separators=(",", ":")))
    participants.on("/a", Respond(json={"blob": blob}))
    participants.on("/b", Fail(400, json={"error": "no " + "y" * (900 * 1024)}))
    participants.on("/a/undo", Respond())

    await sagas.start("huge", {"definition": two_steps(participants)})
    saga = await sagas.wait("huge", within=60)

    assert saga["status"]["phase"] == "Compensated"
    steps = {s["name"]: s for s in saga["status"]["steps"]}
    assert steps["a"]["outputTruncated"] is True
    assert steps["a"]["output"] == {"truncated": True, "bytes": size}
    assert len(steps["b"]["error"]) <= 512
    assert len(json.dumps(saga)) < 64 * 1024
    conn = await asyncpg.connect(postgres_url)
    try:
        stored = await conn.fetchval(
            """SELECT j.event->'output' FROM sagaz_journal j JOIN sagaz_sagas s
               ON s.uid = j.saga_uid WHERE s.name = 'huge' AND j.event_type = 'StepSucceeded'
               AND s.namespace = $1""",
            sagas.namespace,
        )
    finally:
        await conn.close()
    assert json.loads(stored) == {"truncated": True, "bytes": size}


async def test_a_saga_created_afterwards_still_succeeds(
    sagas: Sagas, participants: ParticipantServer
) -> None:
    participants.on("/a", Respond())
    participants.on("/b", Respond())
    await sagas.start("hostile", {"definition": two_steps(participants), "input": {"x": "\u0000"}})
    await sagas.start("fine", {"definition": two_steps(participants), "input": {"x": "ok"}})

    phases = await sagas.wait_all(["hostile", "fine"], within=60)

    assert phases == {"hostile": "Failed", "fine": "Succeeded"}


@pytest.fixture
def deep_json() -> Iterator[None]:
    """This process reads the deep object back too (the watch): as deep as the operator."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(25_000)
    yield
    sys.setrecursionlimit(before)


@pytest.mark.usefixtures("deep_json")
async def test_input_nested_thousands_deep_fails_that_saga_and_stops_nothing(
    cluster: stack.Cluster, sagas: Sagas, participants: ParticipantServer, tmp_path: Path
) -> None:
    """The apiserver stores JSON nested up to 10,000 levels; Python parses 1,000 by default.

    Before the fix, one such Saga made Kopf's watch fail to parse the list, and the operator
    stopped, for every object. (The Python client cannot even send it: kubectl does.)
    """
    participants.on("/a", Respond())
    participants.on("/b", Respond())
    depth = 5000
    manifest = tmp_path / "deep.json"
    steps = json.dumps(two_steps(participants))
    manifest.write_text(
        '{"apiVersion": "sagaz.io/v1alpha1", "kind": "Saga", "metadata": {"name": "deep"},'
        f' "spec": {{"definition": {steps}, "input": {{"x": {"[" * depth}{"]" * depth}}}}}}}'
    )
    created = await asyncio.to_thread(
        subprocess.run,
        [stack.kubectl(), "--kubeconfig", str(cluster.kubeconfig), "-n", sagas.namespace,
         "create", "-f", str(manifest)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    await sagas.start("shallow", {"definition": two_steps(participants)})

    phases = await sagas.wait_all(["deep", "shallow"], within=60)

    assert phases == {"deep": "Failed", "shallow": "Succeeded"}

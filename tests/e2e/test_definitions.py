"""Broken definitions and sagas get clear messages; one broken saga never stalls the others."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest

from harness import stack
from harness.participants import ParticipantServer, Respond
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster


def http(server: ParticipantServer, path: str) -> dict[str, Any]:
    return {"http": {"url": server.url(path)}}


def ready(definition: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (definition.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            [{"name": "a", "dependsOn": ["b"]}, {"name": "b", "dependsOn": ["a"]}],
            "dependency cycle: a -> b -> a",
        ),
        ([{"name": "a", "dependsOn": ["nope"]}], "step 'a' depends on unknown step 'nope'"),
        (
            [{"name": "p", "kind": "Pivot"}, {"name": "x", "dependsOn": ["p"]}],
            "step 'x' is Compensatable but can run after the Pivot step 'p'",
        ),
    ],
    ids=["cycle", "unknown-dependency", "pivot-ordering"],
)
async def test_invalid_definition_is_not_ready_with_a_message(
    sagas: Sagas, participants: ParticipantServer, steps: list[dict[str, Any]], message: str
) -> None:
    spec = {"steps": [{**s, "action": http(participants, "/x")} for s in steps]}
    await sagas.define("broken", spec)

    definition = await sagas.wait_for(
        lambda d: d["metadata"]["name"] == "broken" and ready(d) is not None,
        plural="sagadefinitions",
    )

    condition = ready(definition)
    assert condition is not None
    assert condition["status"] == "False"
    assert message in condition["message"]


async def test_valid_definition_is_ready(sagas: Sagas, participants: ParticipantServer) -> None:
    await sagas.define("fine", {"steps": [{"name": "a", "action": http(participants, "/a")}]})

    definition = await sagas.wait_for(
        lambda d: d["metadata"]["name"] == "fine" and ready(d) is not None,
        plural="sagadefinitions",
    )

    assert ready(definition)["status"] == "True"  # type: ignore[index]
    assert definition["status"]["stepCount"] == 1


async def test_saga_with_missing_definition_fails_with_its_name(sagas: Sagas) -> None:
    await sagas.start("orphan", {"definitionRef": {"name": "does-not-exist"}})

    saga = await sagas.wait("orphan")

    assert saga["status"]["phase"] == "Failed"
    assert "SagaDefinition 'does-not-exist' not found" in saga["status"]["message"]


async def test_input_is_checked_against_the_input_schema(
    sagas: Sagas, participants: ParticipantServer
) -> None:
    spec = {
        "inputSchema": {"type": "object", "required": ["orderId"]},
        "steps": [{"name": "a", "action": http(participants, "/a")}],
    }

    await sagas.start("no-order-id", {"definition": spec, "input": {"amount": 1}})
    saga = await sagas.wait("no-order-id")

    assert saga["status"]["phase"] == "Failed"
    assert "'orderId' is a required property" in saga["status"]["message"]
    assert participants.requests() == []


def test_kubectl_apply_of_a_bad_saga_names_the_field(
    cluster: stack.Cluster, e2e_namespace: str, tmp_path: Any
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: sagaz.io/v1alpha1\nkind: Saga\nmetadata: {name: bad}\n"
        "spec: {definitionRef: {name: x}, definition: {steps: []}}\n"
    )

    done = subprocess.run(
        [
            stack.kubectl(),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            e2e_namespace,
            "apply",
            "-f",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode != 0
    assert "exactly one of spec.definitionRef or spec.definition must be set" in done.stderr


async def test_many_sagas_at_once_with_a_broken_one_among_them(
    sagas: Sagas, participants: ParticipantServer
) -> None:
    count = 200
    for path in ("/a", "/b"):
        participants.on(path, Respond(json={"ok": True}))
    participants.on("/b", Respond(status=409, json={"error": "conflict"}), saga="many-7")
    participants.on("/a/undo", Respond())
    await sagas.define(
        "pair",
        {
            "steps": [
                {
                    "name": "a",
                    "action": http(participants, "/a"),
                    "compensation": http(participants, "/a/undo"),
                },
                {"name": "b", "dependsOn": ["a"], "action": http(participants, "/b")},
            ]
        },
    )
    await sagas.start("broken-input", {"definitionRef": {"name": "missing"}})

    await asyncio.gather(
        *(sagas.start(f"many-{i}", {"definitionRef": {"name": "pair"}}) for i in range(count))
    )
    phases = await sagas.wait_all([f"many-{i}" for i in range(count)], within=300)

    assert phases.pop("many-7") == "Compensated"
    assert set(phases.values()) == {"Succeeded"}
    assert (await sagas.wait("broken-input"))["status"]["phase"] == "Failed"

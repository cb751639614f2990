"""``kubectl sagaz`` and the read API against the real stack: every command, from the user's
side (the installed executable, its exit codes and output), and no secret in any answer."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from harness import stack
from harness.operator import OperatorProcess
from harness.participants import Fail, ParticipantServer, Respond, Stall
from harness.plugin import Plugin
from harness.sagas import Sagas
from sagaz_operator.api.definition import PARTICIPANT_CREDENTIALS_LABEL

pytestmark = pytest.mark.cluster

SECRET = f"Bearer s3cr3t-{uuid.uuid4().hex}"


@pytest.fixture
def plugin(cluster: stack.Cluster, operator: OperatorProcess, e2e_namespace: str) -> Plugin:
    return Plugin(cluster.kubeconfig, e2e_namespace, operator.api_url)


def shop(server: ParticipantServer) -> dict[str, Any]:
    """reserve -> charge -> ship, charge with a secret header."""
    return {
        "defaults": {"retry": {"maxAttempts": 2, "backoff": {"initialSeconds": 0.1}}},
        "steps": [
            {
                "name": "reserve",
                "action": {"http": {"url": server.url("/reserve")}},
                "compensation": {"http": {"url": server.url("/reserve/undo")}},
            },
            {
                "name": "charge",
                "dependsOn": ["reserve"],
                "action": {
                    "http": {
                        "url": server.url("/charge"),
                        "headersFrom": [
                            {"name": "Authorization", "secretKeyRef": {"name": "pay", "key": "t"}}
                        ],
                    }
                },
            },
            {
                "name": "ship",
                "kind": "Compensatable",
                "dependsOn": ["charge"],
                "action": {"http": {"url": server.url("/ship")}},
            },
        ],
    }


async def two_sagas(k8s: client.ApiClient, sagas: Sagas, server: ParticipantServer) -> None:
    await asyncio.to_thread(
        client.CoreV1Api(k8s).create_namespaced_secret,
        sagas.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="pay", labels={PARTICIPANT_CREDENTIALS_LABEL: "true"}
            ),
            data={"t": base64.b64encode(SECRET.encode()).decode()},
        ),
    )
    for path in ("/reserve", "/charge", "/reserve/undo"):
        server.on(path, Respond(json={"ok": True}))
    server.on("/ship", Respond(json={"tracking": "T-1"}))
    server.on("/ship", Fail(422), saga="order-2")
    await sagas.define("shop", shop(server))
    await sagas.start("order-1", {"definitionRef": {"name": "shop"}, "input": {"id": 1}})
    await sagas.start("order-2", {"definitionRef": {"name": "shop"}, "input": {"id": 2}})
    assert await sagas.wait_all(["order-1", "order-2"]) == {
        "order-1": "Succeeded",
        "order-2": "Compensated",
    }


async def test_get_history_and_graph_show_the_sagas(
    k8s: client.ApiClient, sagas: Sagas, participants: ParticipantServer, plugin: Plugin
) -> None:
    await two_sagas(k8s, sagas, participants)

    listed = await plugin("get")
    tree = await plugin("get", "order-2")
    history = await plugin("history", "order-2")
    as_json = await plugin("history", "order-2", "-o", "json")
    mermaid = await plugin("graph", "order-2")
    dot = await plugin("graph", "order-2", "-o", "dot")
    definition = await plugin("graph", "--definition", "shop")

    assert all(r.code == 0 and r.err == "" for r in (listed, tree, history, as_json, mermaid))
    rows = [line.split() for line in listed.out.splitlines()]
    assert rows[0] == ["NAME", "PHASE", "DEFINITION", "PROGRESS", "DURATION", "AGE"]
    assert [row[:4] for row in rows[1:]] == [
        ["order-1", "Succeeded", "shop", "3/3"],
        ["order-2", "Compensated", "shop", "2/3"],
    ]
    assert "Phase:       Compensated" in tree.out
    steps = {line.split()[1]: line.split()[2] for line in tree.out.splitlines() if "─ " in line}
    assert steps == {"reserve": "Compensated", "charge": "Succeeded", "ship": "Failed"}
    assert "422" in tree.out  # the last error
    entries = json.loads(as_json.out)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0]["type"] == "SagaStarted"
    assert entries[-1]["type"] == "SagaFinished"
    assert history.out.splitlines()[0].split() == [
        "SEQ",
        "TIME",
        "EVENT",
        "STEP",
        "ATTEMPT",
        "DETAIL",
    ]
    assert len(history.out.splitlines()) == len(entries) + 1
    assert 's_reserve["reserve<br/>Compensated"]' in mermaid.out
    assert "s_reserve --> s_charge" in mermaid.out
    assert '"charge" -> "ship";' in dot.out
    assert definition.code == 0
    assert 's_ship["ship"]' in definition.out


async def test_no_answer_of_the_api_or_the_plugin_holds_a_secret(
    k8s: client.ApiClient,
    sagas: Sagas,
    participants: ParticipantServer,
    plugin: Plugin,
    operator: OperatorProcess,
) -> None:
    await two_sagas(k8s, sagas, participants)
    assert participants.requests("/charge")[0].header("Authorization") == SECRET

    base = f"{operator.api_url}/api/v1"
    one = f"{base}/namespaces/{sagas.namespace}/sagas/order-2"
    urls = [
        f"{base}/sagas?namespace={sagas.namespace}",
        f"{base}/namespaces/{sagas.namespace}/sagas",
        one,
        one + "/history",
        one + "/definition",
        one + "/outbox",
        f"{operator.api_url}/api/openapi.json",
    ]
    answers = [await asyncio.to_thread(_read, url) for url in urls]
    outputs = [
        (await plugin(*command)).out
        for command in (
            ["get"],
            ["get", "order-2", "-o", "json"],
            ["history", "order-2", "-o", "json"],
            ["graph", "order-2"],
        )
    ]

    charge = json.loads(answers[4])["spec"]["steps"][1]["action"]["http"]
    assert charge["headersFrom"][0]["secretKeyRef"] == {"name": "pay", "key": "t"}  # the name only
    token = SECRET.split()[-1]
    for text in answers + outputs:
        assert token not in text


async def test_suspend_resume_and_abort_wait_for_their_effect(
    sagas: Sagas, participants: ParticipantServer, plugin: Plugin
) -> None:
    stall = participants.on("/a", Stall())
    assert isinstance(stall, Stall)
    participants.on("/a/undo", Respond())
    participants.on("/b", Stall())
    spec = {
        "steps": [
            {
                "name": "a",
                "action": {"http": {"url": participants.url("/a")}},
                "compensation": {"http": {"url": participants.url("/a/undo")}},
            },
            {"name": "b", "dependsOn": ["a"], "action": {"http": {"url": participants.url("/b")}}},
        ]
    }
    await sagas.start("steered", {"definition": spec})
    await participants.wait_for_requests("/a", 1)

    suspended = await plugin("suspend", "steered", "--wait")
    stall.release()  # a finishes; b must not start while the saga is suspended

    def a_succeeded(item: dict[str, Any]) -> bool:
        steps = (item.get("status") or {}).get("steps") or []
        return item["metadata"]["name"] == "steered" and any(
            s["name"] == "a" and s["phase"] == "Succeeded" for s in steps
        )

    await sagas.wait_for(a_succeeded)
    assert participants.requests("/b") == []
    resumed = await plugin("resume", "steered", "--wait")
    await participants.wait_for_requests("/b", 1)
    aborted = await plugin("abort", "steered", "--wait")

    assert suspended.out.splitlines() == [
        "saga.sagaz.io/steered suspended",
        "saga.sagaz.io/steered is Suspended",
    ]
    assert (resumed.code, resumed.out.splitlines()[-1]) == (0, "saga.sagaz.io/steered is Running")
    assert (aborted.code, aborted.err) == (0, "")
    assert aborted.out.splitlines()[-1] == "saga.sagaz.io/steered is Compensated"
    assert len(participants.requests("/a/undo")) == 1


async def test_validate_checks_definitions_offline(tmp_path: Path, plugin: Plugin) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "apiVersion: sagaz.io/v1alpha1\nkind: SagaDefinition\nmetadata: {name: ok}\n"
        "spec: {steps: [{name: a, action: {http: {url: 'http://x/a'}}}]}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: SagaDefinition\nmetadata: {name: loop}\nspec:\n  steps:\n"
        "    - {name: a, dependsOn: [b], action: {http: {url: 'http://x/a'}}}\n"
        "    - {name: b, dependsOn: [a], action: {http: {url: 'http://x/b'}}}\n"
    )

    ok = await plugin("validate", "-f", str(good))
    loop = await plugin("validate", "-f", str(bad))
    missing = await plugin("validate", "-f", str(tmp_path / "none.yaml"))

    assert (ok.code, ok.out) == (0, "sagadefinition/ok: valid (1 steps)\n")
    assert (loop.code, loop.out) == (
        1,
        "sagadefinition/loop: invalid: dependency cycle: a -> b -> a\n",
    )
    assert missing.code == 1
    assert missing.err.startswith("error: cannot read")


async def test_user_errors_are_one_clear_line_and_exit_1(
    cluster: stack.Cluster, e2e_namespace: str, plugin: Plugin
) -> None:
    unknown = await plugin("get", "no-such-saga")
    no_api = await Plugin(
        cluster.kubeconfig, e2e_namespace, f"http://127.0.0.1:{stack.free_port()}"
    )("get")
    usage = await plugin("history")

    assert (unknown.code, unknown.err) == (
        1,
        f"error: no saga no-such-saga in namespace {e2e_namespace} in the journal\n",
    )
    assert no_api.code == 1
    assert no_api.err.startswith("error: cannot reach the Sagaz read API at http://127.0.0.1:")
    assert "Traceback" not in unknown.err + no_api.err + usage.err
    assert usage.code == 2


def _read(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as answer:
        text: str = answer.read().decode()
        return text

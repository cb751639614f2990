"""What participants receive and what the operator refuses to call."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from kubernetes import client

from harness.participants import ParticipantServer, Respond
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster

SECRET = "s3cr3t-token-value"


async def test_secret_headers_reach_the_participant_and_nowhere_else(
    k8s: client.ApiClient, sagas: Sagas, participants: ParticipantServer
) -> None:
    await asyncio.to_thread(
        client.CoreV1Api(k8s).create_namespaced_secret,
        sagas.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name="token", labels={"sagaz.io/participant-credentials": "true"}
            ),
            data={"token": base64.b64encode(SECRET.encode()).decode()},
        ),
    )
    participants.on("/a", Respond(status=500, json={"echo": "no"}, times=1), Respond())
    http = {
        "url": participants.url("/a"),
        "headers": {"X-Tenant": "acme"},
        "headersFrom": [
            {"name": "Authorization", "secretKeyRef": {"name": "token", "key": "token"}}
        ],
    }
    spec = {
        "defaults": {"retry": {"maxAttempts": 2, "backoff": {"initialSeconds": 0.1}}},
        "steps": [{"name": "a", "action": {"http": http}}],
    }

    await sagas.start("secretive", {"definition": spec})
    saga = await sagas.wait("secretive")

    assert saga["status"]["phase"] == "Succeeded"
    first = participants.requests("/a")[0]
    assert first.header("Authorization") == SECRET
    assert first.header("X-Tenant") == "acme"
    events = await sagas.events("secretive", until=lambda reasons: "SagaSucceeded" in reasons)
    assert SECRET not in json.dumps(saga) + json.dumps(events)


async def test_link_local_targets_are_refused_with_a_clear_error(sagas: Sagas) -> None:
    spec = {"steps": [{"name": "a", "action": {"http": {"url": "http://169.254.169.254/latest"}}}]}

    await sagas.start("metadata-grab", {"definition": spec})
    saga = await sagas.wait("metadata-grab")

    assert saga["status"]["phase"] == "Compensated"
    error = saga["status"]["steps"][0]["error"]
    assert "link-local" in error
    assert "not retryable" in error

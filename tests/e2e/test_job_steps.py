"""Steps and compensations run as Kubernetes Jobs (kwok decides how their pods end)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes import client

from harness import kube
from harness.participants import ParticipantServer, Respond
from harness.sagas import Sagas, kwok_job
from sagaz_operator.domain import jobs
from sagaz_operator.domain.model import Attempt

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("kwok_node")]


async def jobs_of(k8s: client.ApiClient, namespace: str, saga: str) -> list[Any]:
    listed = await asyncio.to_thread(
        client.BatchV1Api(k8s).list_namespaced_job,
        namespace,
        label_selector=f"sagaz.io/saga={saga}",
    )
    return sorted(listed.items, key=lambda j: j.metadata.creation_timestamp)


async def test_job_step_succeeds_with_its_output(k8s: client.ApiClient, sagas: Sagas) -> None:
    spec = {"steps": [{"name": "ship", "action": kwok_job(output={"tracking": "T-1"})}]}

    await sagas.start("shipped", {"definition": spec, "input": {"orderId": "42"}})
    saga = await sagas.wait("shipped")

    assert saga["status"]["phase"] == "Succeeded", saga["status"]
    assert saga["status"]["steps"][0]["output"] == {"tracking": "T-1"}
    (created,) = await jobs_of(k8s, sagas.namespace, "shipped")
    container = created.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    assert container.args == ["--order", "42"]  # templated
    assert env["SAGA_STEP"] == "ship"
    assert json.loads(env["SAGA_INPUT"]) == {"orderId": "42"}
    assert created.metadata.owner_references[0].kind == "Saga"
    assert created.metadata.labels["sagaz.io/step"] == "ship"


async def test_failed_job_compensates_with_jobs_in_reverse_order(
    k8s: client.ApiClient, sagas: Sagas, participants: ParticipantServer
) -> None:
    participants.on("/notify", Respond())
    participants.on("/notify/undo", Respond())
    spec = {
        "defaults": {"retry": {"maxAttempts": 1}},
        "steps": [
            {"name": "reserve", "action": kwok_job(output={"r": 1}), "compensation": kwok_job()},
            {
                "name": "notify",
                "dependsOn": ["reserve"],
                "action": {"http": {"url": participants.url("/notify")}},
                "compensation": {"http": {"url": participants.url("/notify/undo")}},
            },
            {"name": "pack", "dependsOn": ["notify"], "action": kwok_job(outcome="fail")},
        ],
    }

    await sagas.start("mixed", {"definition": spec, "input": {"orderId": "7"}})
    saga = await sagas.wait("mixed")

    assert saga["status"]["phase"] == "Compensated"
    assert "BackoffLimitExceeded" in saga["status"]["steps"][2]["error"]
    created = await jobs_of(k8s, sagas.namespace, "mixed")
    purposes = [
        (j.metadata.labels["sagaz.io/step"], j.metadata.labels["sagaz.io/purpose"]) for j in created
    ]
    assert purposes == [("reserve", "action"), ("pack", "action"), ("reserve", "compensation")]
    assert len(participants.requests("/notify/undo")) == 1


async def test_timed_out_job_is_deleted_and_compensated(
    k8s: client.ApiClient, sagas: Sagas
) -> None:
    spec = {
        "defaults": {"timeoutSeconds": 2, "retry": {"maxAttempts": 1}},
        "steps": [{"name": "slow", "action": kwok_job(outcome="hang"), "compensation": kwok_job()}],
    }

    await sagas.start("stuck", {"definition": spec, "input": {"orderId": "1"}})
    saga = await sagas.wait("stuck")

    assert saga["status"]["phase"] == "Compensated"
    assert "timed out" in saga["status"]["steps"][0]["error"]
    action_job = jobs.name(
        Attempt(
            namespace=sagas.namespace,
            saga_name="stuck",
            saga_uid=saga["metadata"]["uid"],
            step="slow",
            purpose="action",
            number=1,
        )
    )
    assert await asyncio.to_thread(
        kube.wait_deleted,
        client.BatchV1Api(k8s).list_namespaced_job,
        action_job,
        namespace=sagas.namespace,
    )
    remaining = [
        j.metadata.labels["sagaz.io/purpose"] for j in await jobs_of(k8s, sagas.namespace, "stuck")
    ]
    assert remaining == ["compensation"]


async def test_invalid_termination_message_is_a_clear_step_error(sagas: Sagas) -> None:
    spec = {"steps": [{"name": "bad", "action": kwok_job(output=None)}]}
    spec["steps"][0]["action"]["job"]["template"]["metadata"]["annotations"] = {
        "sagaz.io/kwok-termination-message": "not json {"
    }

    await sagas.start("garbled", {"definition": spec, "input": {"orderId": "1"}})
    saga = await sagas.wait("garbled")

    assert saga["status"]["phase"] == "Compensated"
    assert "termination message is not JSON" in saga["status"]["steps"][0]["error"]


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        ({"hostNetwork": True}, "template.spec.hostNetwork is not allowed"),
        (
            {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
            "template.spec.volumes[0].hostPath is not allowed",
        ),
    ],
    ids=["host-network", "host-path"],
)
async def test_disallowed_pod_spec_is_refused_with_the_field(
    k8s: client.ApiClient, sagas: Sagas, pod: dict[str, Any], message: str
) -> None:
    spec = {"steps": [{"name": "evil", "action": kwok_job(**pod)}]}

    await sagas.start("evil", {"definition": spec, "input": {"orderId": "1"}})
    saga = await sagas.wait("evil")

    assert saga["status"]["phase"] == "Compensated"
    assert message in saga["status"]["steps"][0]["error"]
    assert await jobs_of(k8s, sagas.namespace, "evil") == []


async def test_deleting_the_saga_deletes_its_jobs(k8s: client.ApiClient, sagas: Sagas) -> None:
    spec = {"steps": [{"name": "long", "action": kwok_job(outcome="hang")}]}
    await sagas.start("doomed", {"definition": spec, "input": {"orderId": "1"}})
    running = await asyncio.to_thread(
        kube.wait_for,
        client.BatchV1Api(k8s).list_namespaced_job,
        lambda j: j.metadata.labels.get("sagaz.io/saga") == "doomed",
        namespace=sagas.namespace,
    )

    await asyncio.to_thread(
        client.CustomObjectsApi(k8s).delete_namespaced_custom_object,
        "sagaz.io",
        "v1alpha1",
        sagas.namespace,
        "sagas",
        "doomed",
    )

    assert await sagas.deleted("doomed")
    assert await asyncio.to_thread(  # the garbage collector follows the owner reference
        kube.wait_deleted,
        client.BatchV1Api(k8s).list_namespaced_job,
        running.metadata.name,
        namespace=sagas.namespace,
    )

"""The generated CRDs on a real API server: accepted, structural, and refusing bad objects.

The unit tests prove the YAML matches the models; these prove the API server agrees with
them: the schemas pass structural validation and the CEL cost limits, defaults are applied,
the status is not pruned, and a bad manifest is refused with a message naming its field.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import crds, stack
from sagaz_operator.api.definition import API_VERSION, GROUP, VERSION, SagaDefinitionSpec
from sagaz_operator.api.saga import SagaStatus

pytestmark = pytest.mark.cluster

HTTP = {"http": {"url": "http://inventory.shop.svc/reserve"}}
JOB = {"job": {"template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}


@pytest.fixture(scope="module", autouse=True)
def installed(k8s: client.ApiClient) -> list[str]:
    return crds.install(k8s)


def manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def definition(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"steps": list(steps or [{"name": "a", "action": HTTP}]), **fields}


def create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    plural = body["kind"].lower() + "s"
    created: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body
    )
    return created


def refusal(call: Callable[[], object]) -> str:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 422
    message: str = json.loads(caught.value.body)["message"]
    return message


def kubectl(
    cluster: stack.Cluster, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [stack.kubectl(), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_good_definition_is_accepted_and_defaulted(k8s: client.ApiClient, namespace: str) -> None:
    spec = definition(
        {
            "name": "reserve-inventory",
            "retry": {"maxAttempts": 5},
            "action": {
                "http": {
                    "url": "http://inventory.shop.svc/reserve",
                    "headers": {"X-Tenant": "acme"},
                    "headersFrom": [
                        {"name": "Authorization", "secretKeyRef": {"name": "t", "key": "token"}}
                    ],
                    "body": {"orderId": "${input.orderId}", "nothing": None},
                }
            },
            "compensation": {"http": {"url": "http://inventory.shop.svc/release"}},
        },
        {"name": "ship", "kind": "Pivot", "dependsOn": ["reserve-inventory"], "action": JOB},
        failureStrategy="FailFastWithGrace",
        gracePeriodSeconds=5,
        inputSchema={"type": "object", "required": ["orderId"]},
    )

    created = create(k8s, namespace, manifest("SagaDefinition", "order-processing", spec))

    first = created["spec"]["steps"][0]
    assert first["kind"] == "Compensatable"
    assert first["action"]["http"]["method"] == "POST"
    assert first["action"]["http"]["body"] == {"orderId": "${input.orderId}", "nothing": None}
    assert "body" not in first["compensation"]["http"]  # omitted: the default body is sent
    assert created["spec"]["steps"][1]["action"]["job"]["backoffLimit"] == 0
    assert SagaDefinitionSpec.model_validate(created["spec"]) == SagaDefinitionSpec.model_validate(
        spec
    )


@pytest.mark.parametrize(
    ("kind", "spec", "field", "message"),
    [
        pytest.param(
            "Saga",
            {"definitionRef": {"name": "d"}, "definition": definition()},
            "spec",
            "exactly one of spec.definitionRef or spec.definition must be set",
            id="definitionRef-and-definition",
        ),
        pytest.param(
            "Saga",
            {"input": {"x": 1}},
            "spec",
            "exactly one of spec.definitionRef or spec.definition must be set",
            id="no-definition",
        ),
        pytest.param(
            "SagaDefinition",
            definition({"name": "a", "action": HTTP}, {"name": "a", "action": HTTP}),
            "spec.steps",
            "step names must be unique",
            id="duplicate-step-names",
        ),
        pytest.param(
            "Saga",
            {"definition": definition({"name": "a", "action": HTTP}, {"name": "a", "action": JOB})},
            "spec.definition.steps",
            "step names must be unique",
            id="duplicate-inline-step-names",
        ),
        pytest.param(
            "SagaDefinition",
            definition({"name": "Reserve_Stock", "action": HTTP}),
            "spec.steps[0].name",
            "should match",
            id="invalid-step-name",
        ),
        pytest.param(
            "SagaDefinition",
            definition({"name": "a", "action": {**HTTP, **JOB}}),
            "spec.steps[0].action",
            "exactly one of http or job must be set",
            id="http-and-job",
        ),
        pytest.param(
            "SagaDefinition",
            definition({"name": "a", "action": HTTP, "compensation": {}}),
            "spec.steps[0].compensation",
            "exactly one of http or job must be set",
            id="empty-compensation",
        ),
        pytest.param(
            "SagaDefinition",
            definition({"name": "a", "action": HTTP, "retry": {"maxAttempts": 0}}),
            "spec.steps[0].retry.maxAttempts",
            "greater than or equal to 1",
            id="max-attempts-zero",
        ),
        pytest.param(
            "SagaDefinition",
            definition(gracePeriodSeconds=10),
            "spec.gracePeriodSeconds",
            "only allowed with failureStrategy FailFastWithGrace",
            id="grace-without-its-strategy",
        ),
        pytest.param(
            "OutboxWorker",
            {
                "database": {"urlSecretRef": {"name": "db", "key": "url"}},
                "kafka": {"bootstrapServers": "kafka:9092"},
                "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2},
            },
            "spec.autoscaling.minReplicas",
            "minReplicas must not exceed autoscaling.maxReplicas",
            id="autoscaling-min-above-max",
        ),
        pytest.param(
            "OutboxWorker",
            {
                "database": {"urlSecretRef": {"name": "db", "key": "url"}},
                "kafka": {"bootstrapServers": "kafka:9092", "topic": ".."},
            },
            "spec.kafka.topic",
            "kafka.topic must not be '.' or '..'",
            id="topic-kafka-refuses",
        ),
    ],
)
def test_bad_objects_are_refused_naming_the_field(
    k8s: client.ApiClient, namespace: str, kind: str, spec: dict[str, Any], field: str, message: str
) -> None:
    body = manifest(kind, "bad", spec)

    refused = refusal(lambda: create(k8s, namespace, body))

    assert f"{field}: Invalid value" in refused
    assert message in refused


def test_kubectl_apply_shows_the_field_at_fault(cluster: stack.Cluster, namespace: str) -> None:
    body = manifest("Saga", "both", {"definitionRef": {"name": "d"}, "definition": definition()})

    applied = kubectl(cluster, "-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump(body))

    assert applied.returncode != 0
    assert "spec: Invalid value" in applied.stderr
    assert "exactly one of spec.definitionRef or spec.definition must be set" in applied.stderr


def test_the_status_is_fully_declared_so_nothing_is_pruned(
    k8s: client.ApiClient, namespace: str
) -> None:
    create(k8s, namespace, manifest("Saga", "order-1", {"definition": definition()}))
    status = {
        "phase": "Compensating",
        "startedAt": "2024-05-01T10:00:00Z",
        "finishedAt": "2024-05-01T10:00:12Z",
        "duration": "12s",
        "message": "step a failed: HTTP 500",
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "StepFailed",
                "message": "a failed",
                "lastTransitionTime": "2024-05-01T10:00:12Z",
                "observedGeneration": 1,
            }
        ],
        "definition": {"name": "order-processing", "generation": 3},
        "progress": "1/1",
        "currentStep": "a",
        "steps": [
            {
                "name": "a",
                "phase": "Compensating",
                "attempts": 3,
                "compensationAttempts": 1,
                "startedAt": "2024-05-01T10:00:00Z",
                "finishedAt": "2024-05-01T10:00:12Z",
                "error": "HTTP 500",
                "output": {"id": 7, "items": [1, None, {"nested": True}]},
                "outputTruncated": False,
            }
        ],
    }
    SagaStatus.model_validate(status)

    patched = client.CustomObjectsApi(k8s).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "sagas", "order-1", {"status": status}
    )

    assert patched["status"] == status


def test_kubectl_scale_drives_an_outbox_worker(cluster: stack.Cluster, namespace: str) -> None:
    body = manifest(
        "OutboxWorker",
        "orders",
        {
            "database": {"urlSecretRef": {"name": "orders-db", "key": "url"}},
            "kafka": {"bootstrapServers": "kafka.data.svc:9092", "topic": "saga-events"},
        },
    )
    assert (
        kubectl(cluster, "-n", namespace, "create", "-f", "-", stdin=json.dumps(body)).returncode
        == 0
    )

    scaled = kubectl(cluster, "-n", namespace, "scale", "outboxworker/orders", "--replicas=3")
    replicas = kubectl(
        cluster, "-n", namespace, "get", "obw", "orders", "-o", "jsonpath={.spec.replicas}"
    )

    assert scaled.returncode == 0, scaled.stderr
    assert replicas.stdout == "3"


def test_the_sagaz_category_and_short_names(
    k8s: client.ApiClient, cluster: stack.Cluster, namespace: str
) -> None:
    create(k8s, namespace, manifest("SagaDefinition", "d", definition()))
    create(k8s, namespace, manifest("Saga", "s", {"definitionRef": {"name": "d"}}))

    def names(resource: str) -> list[str]:
        return sorted(
            kubectl(cluster, "-n", namespace, "get", resource, "-o", "name").stdout.split()
        )

    assert names("sagaz") == ["saga.sagaz.io/s", "sagadefinition.sagaz.io/d"]
    assert names("sd") == names("sagadef") == ["sagadefinition.sagaz.io/d"]
    assert names("saga") == ["saga.sagaz.io/s"]
    assert names("obw") == []


def test_kubectl_explain_shows_the_model_descriptions(cluster: stack.Cluster) -> None:
    deadline = time.monotonic() + 30
    while True:  # the OpenAPI document is published shortly after the CRD is Established
        explained = kubectl(cluster, "explain", "saga.spec.input")
        if explained.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    assert explained.returncode == 0, explained.stderr
    assert "The saga's input, available to steps as ${input.<path>}" in explained.stdout

"""The chart's ValidatingAdmissionPolicy on the real API server (RBAC on).

A test user who may write the operator's kinds, and nothing else, creates objects through
impersonation; the policy asks the API server's authorizer about *that user*, so each test
grants exactly the right in question and sees the refusal turn into an admission.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import chart, crds, kube, rbac, stack
from sagaz_operator.api.definition import API_VERSION, GROUP, VERSION

pytestmark = pytest.mark.cluster

HTTP = {"http": {"url": "http://inventory.shop.svc/reserve"}}


def http(*secrets: str) -> dict[str, Any]:
    headers = [
        {"name": f"X-Token-{index}", "secretKeyRef": {"name": name, "key": "token"}}
        for index, name in enumerate(secrets)
    ]
    return {"http": {"url": "http://payments.shop.svc/charge", "headersFrom": headers}}


def job(account: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x:1"}]}
    if account is not None:
        spec["serviceAccountName"] = account
    return {"job": {"template": {"spec": spec}}}


@pytest.fixture(scope="module", autouse=True)
def policy(k8s: client.ApiClient, cluster: stack.Cluster) -> None:
    crds.install(k8s)
    chart.apply_admission_policy(cluster)  # hack/cluster.sh did; an existing cluster may not


class Author:
    """A user who may write Sagas, SagaDefinitions and OutboxWorkers in one namespace."""

    def __init__(self, admin: client.ApiClient, cluster: stack.Cluster, namespace: str) -> None:
        self.admin, self.namespace = admin, namespace
        self.name = rbac.new_user()
        rbac.grant(
            admin, namespace=namespace, user=self.name, name="author", rules=[rbac.SAGAZ_AUTHOR]
        )
        self.api = rbac.as_user(str(cluster.kubeconfig), self.name)
        rbac.wait_allowed(
            self.api, verb="create", resource="sagas", group=GROUP, namespace=namespace
        )
        chart.wait_enforced(self.api, namespace, enforced=True)

    def may(self, verb: str, resource: str, *, group: str = "", name: str = "") -> None:
        rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
        if name:
            rule["resourceNames"] = [name]
        role = f"{verb}-{resource}-{name or 'all'}"
        rbac.grant(self.admin, namespace=self.namespace, user=self.name, name=role, rules=[rule])
        rbac.wait_allowed(
            self.api, verb=verb, resource=resource, group=group, name=name, namespace=self.namespace
        )

    def create(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
        created: dict[str, Any] = client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, kind.lower() + "s", body
        )
        return created

    def refused(self, kind: str, name: str, spec: dict[str, Any]) -> str:
        with pytest.raises(ApiException) as caught:
            self.create(kind, name, spec)
        assert caught.value.status in (403, 422), caught.value.body
        message: str = json.loads(caught.value.body)["message"]
        assert chart.POLICY in message  # refused by the policy, not by RBAC or the schema
        return message


@pytest.fixture
def author(k8s: client.ApiClient, cluster: stack.Cluster) -> Iterator[Author]:
    with kube.namespace(k8s, prefix="policy") as namespace:
        yield Author(k8s, cluster, namespace)


def test_a_saga_naming_a_secret_its_author_may_not_read_is_refused_until_they_may(
    author: Author,
) -> None:
    spec = {
        "definition": {
            "steps": [
                {"name": "a", "action": HTTP},
                {"name": "b", "action": http("payments-token")},
            ]
        }
    }

    message = author.refused("Saga", "order-1", spec)

    assert (
        "spec.definition.steps[1].action.http.headersFrom[0]: you may not get secret"
        f' "payments-token" in namespace "{author.namespace}"'
    ) in message
    author.may("get", "secrets", name="payments-token")
    author.create("Saga", "order-1", spec)


def test_a_definition_is_checked_in_its_compensations_too_and_names_every_refused_header(
    author: Author,
) -> None:
    step = {"name": "pay", "action": http("a-token"), "compensation": http("b-token", "a-token")}
    author.may("get", "secrets", name="a-token")

    message = author.refused("SagaDefinition", "payments", {"steps": [step]})

    ns = author.namespace
    assert message.endswith(
        f'spec.steps[0].compensation.http.headersFrom[0]: you may not get secret "b-token"'
        f' in namespace "{ns}"'
    ), message
    assert "headersFrom[1]" not in message  # a-token may be read
    author.may("get", "secrets", name="b-token")
    author.create("SagaDefinition", "payments", {"steps": [step]})


def test_eight_secrets_are_checked_one_by_one_and_a_ninth_needs_rights_on_all(
    author: Author,
) -> None:
    names = [f"token-{index}" for index in range(9)]
    for name in names[:8]:
        author.may("get", "secrets", name=name)

    author.create("SagaDefinition", "eight", {"steps": [{"name": "a", "action": http(*names[:8])}]})
    message = author.refused(
        "SagaDefinition", "nine", {"steps": [{"name": "a", "action": http(*names)}]}
    )

    assert "names 9 distinct Secrets in headersFrom" in message
    author.may("get", "secrets")
    author.create("SagaDefinition", "nine", {"steps": [{"name": "a", "action": http(*names)}]})


def test_a_job_step_needs_the_right_to_create_jobs(author: Author) -> None:
    spec = {"steps": [{"name": "a", "action": HTTP}, {"name": "ship", "action": job()}]}

    message = author.refused("SagaDefinition", "shipping", spec)

    assert (
        f'spec.steps[1].action.job: you may not create jobs in namespace "{author.namespace}"'
        in message
    )
    author.may("create", "jobs", group="batch")
    author.create("SagaDefinition", "shipping", spec)  # the default ServiceAccount needs no more


def test_a_job_step_running_as_a_service_account_needs_the_right_to_impersonate_it(
    author: Author,
) -> None:
    author.may("create", "jobs", group="batch")
    spec = {
        "definition": {"steps": [{"name": "a", "action": HTTP, "compensation": job("deployer")}]}
    }

    message = author.refused("Saga", "deploy-1", spec)

    assert (
        "spec.definition.steps[0].compensation.job.template.spec.serviceAccountName: you may not"
        f' impersonate serviceaccount "deployer" in namespace "{author.namespace}"'
    ) in message
    author.may("impersonate", "serviceaccounts", name="deployer")
    author.create("Saga", "deploy-1", spec)


def test_the_deprecated_service_account_field_is_checked_too(author: Author) -> None:
    author.may("create", "jobs", group="batch")
    ship = job()
    ship["job"]["template"]["spec"]["serviceAccount"] = "deployer"

    message = author.refused("SagaDefinition", "legacy", {"steps": [{"name": "a", "action": ship}]})

    assert (
        "spec.steps[0].action.job.template.spec.serviceAccount: you may not impersonate"
        ' serviceaccount "deployer"'
    ) in message


def test_a_templated_service_account_is_refused(author: Author) -> None:
    author.may("create", "jobs", group="batch")
    author.may("impersonate", "serviceaccounts")
    spec = {"steps": [{"name": "a", "action": job("${input.account}")}]}

    message = author.refused("SagaDefinition", "chosen-by-input", spec)

    assert "spec.steps[0].action.job.template.spec.serviceAccountName must be a literal" in message


def test_an_outboxworker_needs_the_right_to_read_its_database_secret(author: Author) -> None:
    spec = {
        "database": {"urlSecretRef": {"name": "orders-db", "key": "url"}},
        "kafka": {"bootstrapServers": "kafka:9092"},
    }

    message = author.refused("OutboxWorker", "relay", spec)

    assert (
        f'spec.database.urlSecretRef: you may not get secret "orders-db" in namespace'
        f' "{author.namespace}"'
    ) in message
    author.may("get", "secrets", name="orders-db")
    author.create("OutboxWorker", "relay", spec)


def test_a_saga_of_a_checked_definition_and_metadata_edits_need_no_extra_rights(
    k8s: client.ApiClient, author: Author
) -> None:
    """The definition's author vouched for its Secrets and Jobs when it was admitted; running
    it, and edits that leave the checked fields alone (the operator's own finalizers and
    annotations, a label, spec.abort), are not re-checked."""
    admin = client.CustomObjectsApi(k8s)
    spec = {
        "steps": [{"name": "a", "action": http("payments-token")}, {"name": "b", "action": job()}]
    }
    admin.create_namespaced_custom_object(
        GROUP,
        VERSION,
        author.namespace,
        "sagadefinitions",
        {
            "apiVersion": API_VERSION,
            "kind": "SagaDefinition",
            "metadata": {"name": "orders"},
            "spec": spec,
        },
    )

    author.create("Saga", "order-1", {"definitionRef": {"name": "orders"}})
    own = client.CustomObjectsApi(author.api)
    own.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        author.namespace,
        "sagadefinitions",
        "orders",
        {"metadata": {"labels": {"team": "shop"}}},
    )
    own.patch_namespaced_custom_object(
        GROUP, VERSION, author.namespace, "sagas", "order-1", {"spec": {"abort": True}}
    )
    with pytest.raises(ApiException) as caught:
        own.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            author.namespace,
            "sagadefinitions",
            "orders",
            {"spec": {"steps": [{"name": "a", "action": http("other-token")}]}},
        )
    assert 'you may not get secret "other-token"' in json.loads(caught.value.body)["message"]


def test_a_large_definition_is_checked_within_the_cost_budget(author: Author) -> None:
    """100 steps, each action and compensation with 8 headers: 1,600 references to three
    Secrets, 400 of them to the refused one. The CEL cost limits hold (the schema's maximum,
    32 headers each, was checked by hand: see the README), and the message names three fields
    and counts the rest."""
    names = [f"token-{index % 3}" for index in range(8)]
    steps = [
        {"name": f"s{index}", "action": http(*names), "compensation": http(*names)}
        for index in range(100)
    ]
    author.may("get", "secrets", name="token-0")
    author.may("get", "secrets", name="token-1")

    message = author.refused("SagaDefinition", "large", {"steps": steps})

    assert message.endswith(
        "spec.steps[0].action.http.headersFrom[2], spec.steps[0].action.http.headersFrom[5],"
        " spec.steps[1].action.http.headersFrom[2] (and 397 more): you may not get secret"
        f' "token-2" in namespace "{author.namespace}"'
    ), message
    author.may("get", "secrets", name="token-2")
    author.create("SagaDefinition", "large", {"steps": steps})


@pytest.fixture
def evaluated(k8s: client.ApiClient, author: Author) -> Iterator[str]:
    """A policy with the chart's match rules and conditions whose only validation refuses
    with "evaluated", bound to the author's namespace: what it refuses, the chart's policy
    evaluates; what it admits, the chart's policy lets past unevaluated."""
    rendered = chart.render(show_only=chart.POLICY_TEMPLATE)
    chart_policy = next(doc for doc in rendered if doc["kind"] == "ValidatingAdmissionPolicy")
    name = f"sagaz-match-probe-{author.namespace}"
    api = client.AdmissionregistrationV1Api(k8s)
    api.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": chart_policy["spec"]["matchConstraints"],
                "matchConditions": chart_policy["spec"]["matchConditions"],
                "validations": [{"expression": "false", "message": "evaluated"}],
            },
        }
    )
    selector = {"matchLabels": {"kubernetes.io/metadata.name": author.namespace}}
    api.create_validating_admission_policy_binding(
        {
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": selector},
            },
        }
    )
    try:
        # The admission plugin learns of a binding through an informer, a moment later.
        inline = {"definition": {"steps": [{"name": "a", "action": HTTP}]}}
        deadline = time.monotonic() + 30
        while not _refused_as_evaluated(author, "Saga", inline):
            assert time.monotonic() < deadline, "the probe policy was never enforced"
            time.sleep(0.1)
        yield name
    finally:
        api.delete_validating_admission_policy_binding(name)
        api.delete_validating_admission_policy(name)


def _refused_as_evaluated(author: Author, kind: str, spec: dict[str, Any]) -> bool:
    body = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": "probe"}, "spec": spec}
    try:
        client.CustomObjectsApi(author.api).create_namespaced_custom_object(
            GROUP, VERSION, author.namespace, kind.lower() + "s", body, dry_run="All"
        )
    except ApiException as error:
        return "evaluated" in (error.body or "")
    return False


def test_a_saga_of_a_definition_is_not_evaluated_at_all(author: Author, evaluated: str) -> None:
    """A definitionRef Saga names no Secret and no Job: the match condition lets it past the
    policy unevaluated (seventeen validations of empty lists were half the create's cost on
    the API server). A Saga with an inline definition, and every other kind, is evaluated."""
    reference = {"definitionRef": {"name": "orders"}}
    assert not _refused_as_evaluated(author, "Saga", reference)
    steps = [{"name": "a", "action": HTTP}]
    assert _refused_as_evaluated(author, "Saga", {"definition": {"steps": steps}})
    assert _refused_as_evaluated(author, "SagaDefinition", {"steps": steps})

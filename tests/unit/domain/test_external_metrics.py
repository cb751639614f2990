"""The external metrics API's pure parts: the selector, the caller, the documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sagaz_operator.domain import external_metrics
from sagaz_operator.domain.external_metrics import Identity, RequestHeaders, SelectorError

PROXY = RequestHeaders(allowed_names=("front-proxy-client",))


@pytest.mark.parametrize(
    ("selector", "worker"),
    [
        ("outboxworker=orders", "orders"),
        ("outboxworker==orders", "orders"),
        (" outboxworker = orders.v2 ", "orders.v2"),
    ],
)
def test_the_selector_names_one_worker(selector: str, worker: str) -> None:
    assert external_metrics.worker_of(selector) == worker


@pytest.mark.parametrize(
    "selector",
    [
        "",
        "app=orders",
        "outboxworker!=orders",
        "outboxworker in (orders)",
        "outboxworker",
        "outboxworker=orders,app=x",
        "outboxworker=a,outboxworker=b",
        "outboxworker=../secrets",
        "outboxworker=Orders",
    ],
)
def test_any_other_selector_is_refused_not_answered(selector: str) -> None:
    with pytest.raises(SelectorError, match="labelSelector"):
        external_metrics.worker_of(selector)


def test_the_front_proxy_names_the_user_groups_and_extra() -> None:
    who = external_metrics.identity(
        client_names=["front-proxy-client"],
        headers=[
            ("x-remote-user", "system:serviceaccount:kube-system:horizontal-pod-autoscaler"),
            ("X-Remote-Group", "system:serviceaccounts"),
            ("X-Remote-Group", "system:authenticated"),
            ("X-Remote-Extra-Authentication.kubernetes.io%2fpod-name", "p"),
        ],
        settings=PROXY,
    )
    assert who == Identity(
        user="system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        groups=("system:serviceaccounts", "system:authenticated"),
        extra={"authentication.kubernetes.io/pod-name": ("p",)},
    )


@pytest.mark.parametrize(
    ("client_names", "headers", "why"),
    [
        (None, [("X-Remote-User", "admin")], "no client certificate"),
        (["someone-else"], [("X-Remote-User", "admin")], "not one of the allowed"),
        (["front-proxy-client"], [], "named no user"),
        (["front-proxy-client"], [("X-Remote-User", "")], "named no user"),
    ],
)
def test_headers_are_believed_only_from_the_front_proxy(
    client_names: list[str] | None, headers: list[tuple[str, str]], why: str
) -> None:
    refused = external_metrics.identity(client_names=client_names, headers=headers, settings=PROXY)
    assert isinstance(refused, str)
    assert why in refused


def test_no_allowed_names_means_any_certificate_of_the_client_ca() -> None:
    who = external_metrics.identity(
        client_names=["anything"], headers=[("X-Remote-User", "u")], settings=RequestHeaders()
    )
    assert who == Identity(user="u")


def test_request_header_settings_come_from_the_api_servers_configmap() -> None:
    settings = RequestHeaders.from_configmap(
        {
            "requestheader-client-ca-file": "-----BEGIN CERTIFICATE-----...",
            "requestheader-allowed-names": json.dumps(["front-proxy-client"]),
            "requestheader-username-headers": json.dumps(["X-User"]),
            "requestheader-group-headers": json.dumps(["X-Group"]),
            "requestheader-extra-headers-prefix": json.dumps(["X-Extra-"]),
        }
    )
    assert settings == RequestHeaders(
        allowed_names=("front-proxy-client",),
        username_headers=("X-User",),
        group_headers=("X-Group",),
        extra_prefixes=("X-Extra-",),
    )
    assert RequestHeaders.from_configmap({}) == RequestHeaders()
    with pytest.raises(ValueError, match="requestheader-allowed-names"):
        RequestHeaders.from_configmap({"requestheader-allowed-names": '"front-proxy-client"'})


def test_the_access_review_asks_for_get_on_the_metric_in_the_namespace() -> None:
    review = external_metrics.access_review(
        Identity(user="u", groups=("g",), extra={"k": ("v",)}),
        namespace="shop",
        metric="sagaz_outbox_pending_events",
    )
    assert review["spec"] == {
        "user": "u",
        "groups": ["g"],
        "extra": {"k": ["v"]},
        "resourceAttributes": {
            "namespace": "shop",
            "verb": "get",
            "group": "external.metrics.k8s.io",
            "version": "v1beta1",
            "resource": "sagaz_outbox_pending_events",
        },
    }


def test_the_documents_are_what_the_hpa_controller_decodes() -> None:
    listed = external_metrics.resource_list()
    assert listed["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    assert [r["name"] for r in listed["resources"]] == ["sagaz_outbox_pending_events"]  # type: ignore[attr-defined]
    values = external_metrics.value_list(
        worker="orders", pending=3000, now=datetime(2026, 12, 1, 23, 0, 5, 123, tzinfo=UTC)
    )
    assert values == {
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {
                "metricName": "sagaz_outbox_pending_events",
                "metricLabels": {"outboxworker": "orders"},
                "timestamp": "2026-12-01T23:00:05Z",
                "value": "3000",
            }
        ],
    }

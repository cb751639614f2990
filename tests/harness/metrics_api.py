"""Registers a test operator's external metrics API with the real API server's aggregator.

The local control plane has no kube-proxy and no pod network, so the APIService names an
``ExternalName`` Service whose externalName is ``localhost``: without
``--enable-aggregator-routing`` the aggregator resolves such a Service to
``https://localhost:<APIService port>`` (``ResolveCluster`` in k8s.io/apiserver's
``util/proxy``), and dials the operator on loopback. It verifies the serving certificate for
``<service>.<namespace>.svc`` against the APIService's ``caBundle``: hack/certs.sh issues
``external-metrics`` for exactly this Service, signed by the cluster's CA.

While an APIService is registered but unavailable, namespaces cannot finish terminating (the
namespace controller needs every group's discovery) and clients warn about the group, so the
APIService is removed as soon as the test that needs it ends, before its operator stops.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any

from kubernetes import client

from harness import kube, stack

NAMESPACE = "sagaz-system"
SERVICE = "sagaz-external-metrics"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
PKI = stack.STATE / "pki"


class NotAvailableError(TimeoutError):
    """The aggregator never found the registered server available (not serving, wrong TLS)."""


def operator_env(port: int) -> dict[str, str]:
    """The settings that make a test operator serve the API on 127.0.0.1:``port``."""
    return {
        "SAGAZ_EXTERNAL_METRICS_ADDRESS": f"127.0.0.1:{port}",
        "SAGAZ_EXTERNAL_METRICS_CERT_FILE": str(PKI / "external-metrics.crt"),
        "SAGAZ_EXTERNAL_METRICS_KEY_FILE": str(PKI / "external-metrics.key"),
    }


@contextlib.contextmanager
def registered(api: client.ApiClient, port: int, *, timeout: float = 120) -> Iterator[None]:
    """The APIService points at 127.0.0.1:``port`` and is Available, until the block ends."""
    core = client.CoreV1Api(api)
    registration = client.ApiregistrationV1Api(api)
    with contextlib.suppress(client.ApiException):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    with contextlib.suppress(client.ApiException):
        core.delete_namespaced_service(SERVICE, NAMESPACE)
    core.create_namespaced_service(
        NAMESPACE,
        client.V1Service(
            metadata=client.V1ObjectMeta(name=SERVICE),
            spec=client.V1ServiceSpec(type="ExternalName", external_name="localhost"),
        ),
    )
    body = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": API_SERVICE},
        "spec": {
            "group": "external.metrics.k8s.io",
            "version": "v1beta1",
            "service": {"namespace": NAMESPACE, "name": SERVICE, "port": port},
            "caBundle": base64.b64encode((PKI / "ca.crt").read_bytes()).decode(),
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
    previous = _existing(registration)
    with contextlib.suppress(client.ApiException):
        registration.delete_api_service(API_SERVICE)
    registration.create_api_service(body)
    try:
        try:
            kube.wait_for(
                registration.list_api_service,
                lambda item: item.metadata.name == API_SERVICE and _available(item),
                timeout=timeout,
            )
        except TimeoutError:
            raise NotAvailableError(
                f"APIService {API_SERVICE} not Available within {timeout}s: nothing serves"
                f" external metrics on 127.0.0.1:{port}"
            ) from None
        yield
    finally:
        with contextlib.suppress(client.ApiException):
            registration.delete_api_service(API_SERVICE)
        if previous is not None:  # the one `make demo`'s operator registered (hack/operator.sh)
            registration.create_api_service(previous)
        else:
            with contextlib.suppress(client.ApiException):
                core.delete_namespaced_service(SERVICE, NAMESPACE)


def _existing(registration: client.ApiregistrationV1Api) -> dict[str, Any] | None:
    try:
        found = registration.read_api_service(API_SERVICE)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    spec = registration.api_client.sanitize_for_serialization(found.spec)
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": API_SERVICE},
        "spec": spec,
    }


def _available(item: client.V1APIService) -> bool:
    conditions = (item.status and item.status.conditions) or []
    return any(c.type == "Available" and c.status == "True" for c in conditions)

"""Where ``kubectl sagaz`` talks to: the apiserver (kubectl's kubeconfig, context, namespace)
and the operator's read API (a URL, or the chart's Service through the apiserver's proxy).

A user error (no cluster, no API, an unknown saga) is a ``PluginError`` with a sentence for
the user, never a traceback.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from sagaz_operator.api.definition import GROUP, VERSION

#: The chart's read API Service is found by these labels (any namespace) unless named.
API_SERVICE_SELECTOR = "app.kubernetes.io/name=sagaz-operator,app.kubernetes.io/component=api"


class PluginError(Exception):
    """A problem the user can act on; the message says what and how."""


@dataclass(frozen=True, kw_only=True)
class Target:
    kubeconfig: str | None
    context: str | None
    namespace: str | None
    api: str | None  # --api or SAGAZ_API_URL
    api_service: str | None  # NAMESPACE/NAME of the read API Service


class Kube:
    """A small synchronous apiserver client with the user's credentials."""

    def __init__(self, target: Target) -> None:
        configuration = k8s_client.Configuration()
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=target.kubeconfig,
                context=target.context,
                client_configuration=configuration,
            )
        except (k8s_config.ConfigException, FileNotFoundError, OSError) as error:
            raise PluginError(
                f"no usable kubeconfig ({error}); set KUBECONFIG or --kubeconfig"
            ) from None
        self.namespace = target.namespace or _context_namespace(target)
        verify: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
            if configuration.cert_file:
                verify.load_cert_chain(configuration.cert_file, configuration.key_file)
        headers = {}
        if configuration.refresh_api_key_hook is not None:
            configuration.refresh_api_key_hook(configuration)
        settings: Mapping[str, Any] = configuration.auth_settings()  # a TypedDict
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        self.host = configuration.host
        self._http = httpx.Client(
            base_url=configuration.host, verify=verify, headers=headers, timeout=30.0
        )

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **options)
        except httpx.TransportError as error:
            raise PluginError(f"cannot reach the Kubernetes API at {self.host}: {error}") from None

    def saga(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.get_object("sagas", name, namespace)

    def get_object(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        namespace = namespace or self.namespace
        response = self.request("GET", _path(plural, namespace, name))
        if response.status_code == 404:
            kind = {"sagas": "saga", "sagadefinitions": "sagadefinition"}[plural]
            raise PluginError(f'{kind} "{name}" not found in namespace {namespace}')
        return _checked(response)

    def patch_saga(self, name: str, patch: dict[str, Any]) -> httpx.Response:
        return self.request(
            "PATCH",
            _path("sagas", self.namespace, name),
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def names(self, plural: str) -> list[str]:
        body = _checked(self.request("GET", _path(plural, self.namespace, None)))
        return sorted(item["metadata"]["name"] for item in body.get("items", []))


class ReadApi:
    """The operator's read API, at a URL or through the apiserver's service proxy."""

    def __init__(self, target: Target, kube: Kube | None) -> None:
        self._target = target
        self._kube = kube
        self._url = (target.api or os.environ.get("SAGAZ_API_URL") or "").rstrip("/")

    def get(self, path: str, **params: str | int | None) -> dict[str, Any]:
        query = {key: str(value) for key, value in params.items() if value is not None}
        if self._url:
            try:
                response = httpx.get(self._url + path, params=query, timeout=30.0)
            except httpx.TransportError as error:
                raise PluginError(
                    f"cannot reach the Sagaz read API at {self._url} ({error}); is the operator "
                    "running with SAGAZ_API_ADDRESS? (set --api or SAGAZ_API_URL)"
                ) from None
        else:
            response = self._through_proxy(path, query)
        if response.status_code == 404:
            raise PluginError(_problem(response) or f"not found: {path}")
        if not response.is_success:
            raise PluginError(
                f"the Sagaz read API answered {response.status_code}: "
                f"{_problem(response) or response.text[:200]}"
            )
        body: dict[str, Any] = response.json()
        return body

    def saga_path(self, name: str) -> str:
        namespace = self._kube.namespace if self._kube else self._target.namespace or "default"
        return f"/api/v1/namespaces/{quote(namespace)}/sagas/{quote(name)}"

    def _through_proxy(self, path: str, query: dict[str, str]) -> httpx.Response:
        if self._kube is None:
            raise PluginError("no read API: set --api URL or SAGAZ_API_URL")
        namespace, name = self._service()
        proxy = f"/api/v1/namespaces/{namespace}/services/{name}:http/proxy"
        response = self._kube.request("GET", proxy + path, params=query)
        if not response.is_success and not _from_the_api(response):
            # The apiserver (or something between it and the pods) answered, not the API.
            raise PluginError(
                f"cannot reach the Sagaz read API through the service {namespace}/{name} "
                f"(HTTP {response.status_code}: {' '.join(response.text.split())[:120]}); "
                "is the operator running with api.enabled? Or use --api URL"
            )
        return response

    def _service(self) -> tuple[str, str]:
        if self._target.api_service:
            namespace, _, name = self._target.api_service.partition("/")
            if not name:
                raise PluginError("--api-service must be NAMESPACE/NAME")
            return namespace, name
        assert self._kube is not None
        response = self._kube.request(
            "GET", "/api/v1/services", params={"labelSelector": API_SERVICE_SELECTOR}
        )
        if response.status_code == 403:
            raise PluginError(
                "cannot look for the Sagaz read API Service (listing services is forbidden); "
                "name it with --api-service NAMESPACE/NAME, or use --api URL"
            )
        items = _checked(response).get("items", [])
        if not items:
            raise PluginError(
                "no Sagaz read API found: no --api URL, no SAGAZ_API_URL, and no Service "
                f"labelled {API_SERVICE_SELECTOR} (install the chart with api.enabled=true)"
            )
        meta = items[0]["metadata"]
        return meta["namespace"], meta["name"]


def _from_the_api(response: httpx.Response) -> bool:
    """Whether an error answer is the read API's own (``{"error": ..., "status": ...}``)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == response.status_code and "error" in body


def _context_namespace(target: Target) -> str:
    try:
        contexts, active = k8s_config.list_kube_config_contexts(target.kubeconfig)  # type: ignore[no-untyped-call]
    except (k8s_config.ConfigException, FileNotFoundError, OSError):
        return "default"
    chosen = next((c for c in contexts if c["name"] == target.context), active)
    namespace: str = (chosen or {}).get("context", {}).get("namespace") or "default"
    return namespace


def _path(plural: str, namespace: str, name: str | None) -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


def _checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code in (401, 403):
        raise PluginError(f"the Kubernetes API refused: {_problem(response, 'message')}")
    if not response.is_success:
        raise PluginError(
            f"the Kubernetes API answered {response.status_code}: {_problem(response, 'message')}"
        )
    body: dict[str, Any] = response.json()
    return body


def _problem(response: httpx.Response, key: str = "error") -> str:
    try:
        return str(response.json().get(key, ""))
    except ValueError:
        return response.text[:200]

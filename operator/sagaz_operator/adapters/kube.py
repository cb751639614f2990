"""The operator's own Kubernetes API client: status patches, Events, Secrets, Jobs.

Kopf watches and dispatches; everything the operator writes goes through this one small
async client built on httpx, so all API I/O sits in one place and shares one connection pool.
Credentials come from the official client's loaders (in-cluster service account, else the
kubeconfig), which also handle token refresh and client certificates.
"""

from __future__ import annotations

import base64
import logging
import re
import ssl
from collections.abc import AsyncIterator, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from sagaz_operator.adapters.bounded import BoundedTransport
from sagaz_operator.api.definition import DNS_SUBDOMAIN, GROUP, VERSION
from sagaz_operator.errors import ConfigError, SagazError, SecretNotOptedInError

logger = logging.getLogger(__name__)

COMPONENT = "sagaz-operator"
_OBJECT_NAME = re.compile(DNS_SUBDOMAIN)


@dataclass(frozen=True, kw_only=True)
class ObjectRef:
    """Enough of an object to address it and to attach Events to it."""

    kind: str
    plural: str
    namespace: str
    name: str
    uid: str
    api_version: str = f"{GROUP}/{VERSION}"

    @property
    def path(self) -> str:
        return resource_path(self.api_version, self.plural, self.namespace, self.name)


def resource_path(api_version: str, plural: str, namespace: str, name: str) -> str:
    """The API path of a namespaced object, e.g. ``("apps/v1", "deployments", "ns", "x")``."""
    group, _, version = api_version.rpartition("/")
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    return f"{prefix}/namespaces/{namespace}/{plural}/{quote(name, safe='')}"


#: Answers worth repeating the same request for: the server was busy or briefly unwell.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: A Table row per object: the printer columns and the object's metadata only.
TABLE = "application/json;as=Table;g=meta.k8s.io;v=v1"


class KubeError(SagazError):
    """A Kubernetes API call did not do what was asked; ``retryable`` says whether the same
    request may still succeed later (services decide on that alone, not on these types)."""


class ApiError(KubeError):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {message}")
        self.status = status
        self.retryable = status in RETRYABLE_STATUSES


class ApiUnreachableError(KubeError):
    """No answer: the connection failed or timed out (the request may have been applied)."""

    retryable = True


class _Auth(httpx.Auth):
    """Bearer tokens, refreshed by the official loader's hook (bound tokens expire)."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self._configuration = configuration

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._configuration.refresh_api_key_hook is not None:
            self._configuration.refresh_api_key_hook(self._configuration)
        # The official client names its token setting differently across versions
        # ("authorization", "BearerToken"); its auth_settings() knows where it goes.
        settings: Mapping[str, Any] = self._configuration.auth_settings()  # a TypedDict
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                request.headers[setting["key"]] = setting["value"]
        yield request


class Kube:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @classmethod
    def from_environment(cls) -> Kube:
        configuration = k8s_client.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            try:
                k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except (k8s_config.ConfigException, FileNotFoundError) as error:
                raise ConfigError(f"no Kubernetes credentials: {error}") from error
        verify: ssl.SSLContext | bool = False
        if configuration.verify_ssl:
            verify = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
            if configuration.cert_file:
                verify.load_cert_chain(configuration.cert_file, configuration.key_file)
        http = httpx.AsyncClient(
            base_url=configuration.host,
            transport=BoundedTransport(
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
                verify=verify,
            ),
            verify=verify,  # for a proxy from the environment, if any
            auth=_Auth(configuration),
            timeout=httpx.Timeout(30.0),
        )
        return cls(http)

    async def close(self) -> None:
        await self._http.aclose()

    async def get(self, path: str) -> dict[str, Any] | None:
        response = await self._send("GET", path)
        if response.status_code == 404:
            return None
        return _json(response)

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return _json(await self._send("POST", path, json=body))

    async def delete(self, path: str, *, propagation: str = "Background") -> None:
        response = await self._send("DELETE", path, json={"propagationPolicy": propagation})
        if response.status_code != 404:
            _json(response)

    async def apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``body`` as the operator's field manager, taking over conflicts."""
        response = await self._send(
            "PATCH",
            path,
            params={"fieldManager": COMPONENT, "force": "true"},
            json=body,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        return _json(response)

    async def patch_status(
        self, ref: ObjectRef, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> None:
        """Merge-patch ``.status``; a vanished object is not an error (it was deleted).

        With ``resource_version`` the patch applies only to that version of the object (the
        API server answers 409 if it changed since), so a repair never overwrites a newer write.
        """
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        response = await self._send(
            "PATCH",
            f"{ref.path}/status",
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        if response.status_code != 404:
            _json(response)

    async def list_table(self, path: str, *, page: int = 500) -> AsyncIterator[dict[str, Any]]:
        """Every object under ``path`` as a Table row: ``{"cells": {column: value}, "object":
        metadata}``, a page at a time. Rows carry the printer columns, not the whole object,
        so listing thousands of objects costs kilobytes per hundred, not megabytes."""
        token = ""
        while True:
            params = {"limit": str(page), **({"continue": token} if token else {})}
            table = _json(await self._send("GET", path, params=params, headers={"Accept": TABLE}))
            names = [column["name"] for column in table.get("columnDefinitions") or []]
            for row in table.get("rows") or []:
                cells = dict(zip(names, row["cells"], strict=False))
                yield {"cells": cells, "object": row["object"]}
            token = (table.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    async def create_event(
        self, ref: ObjectRef, *, name: str, reason: str, message: str, warning: bool = False
    ) -> None:
        """Record an Event named ``name``, raising ``KubeError`` if it could not be.

        The fixed name makes repeating it harmless: an Event that already exists (an earlier
        try landed though its answer was lost) counts as recorded, so one fact is one Event.
        """
        body = self._event(ref, reason=reason, message=message, warning=warning)
        body["metadata"] = {"name": name, "namespace": ref.namespace}
        response = await self._send("POST", f"/api/v1/namespaces/{ref.namespace}/events", json=body)
        if response.status_code != 409:
            _json(response)

    async def post_event(
        self, ref: ObjectRef, *, reason: str, message: str, warning: bool = False
    ) -> None:
        """Post an Event for people, best effort: a failure is logged, never raised."""
        body = self._event(ref, reason=reason, message=message, warning=warning)
        try:
            await self.create(f"/api/v1/namespaces/{ref.namespace}/events", body)
        except KubeError as error:  # an Event is never worth failing for
            logger.warning(
                "could not post event %s on %s/%s: %s", reason, ref.namespace, ref.name, error
            )

    @staticmethod
    def _event(ref: ObjectRef, *, reason: str, message: str, warning: bool) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            return await self._http.request(method, path, **options)
        except httpx.TransportError as error:
            raise ApiUnreachableError(f"Kubernetes API unreachable: {error!r}") from error

    async def read(self, *, namespace: str, name: str, key: str, opt_in_label: str) -> str:
        """Read one key of a Secret of ``namespace``; never logged.

        The Secret is used only if its owner labelled it ``opt_in_label: "true"``: RBAC lets
        the operator read every Secret, so the label, not the author of a saga, decides which
        ones it may hand on (``SecretNotOptedInError`` otherwise). ``name`` must be an object
        name: a path such as ``../../other/secrets/x`` could leave the namespace.
        Raises ``LookupError`` for a Secret or key that does not exist.
        """
        if not _OBJECT_NAME.fullmatch(name) or len(name) > 253:
            raise LookupError(f"{name!r} is not a Secret name")
        secret = await self.get(resource_path("v1", "secrets", namespace, name))
        if secret is None:
            raise LookupError(f"secret {namespace}/{name} not found")
        labels = (secret.get("metadata") or {}).get("labels") or {}
        if labels.get(opt_in_label) != "true":
            raise SecretNotOptedInError(
                f'Secret {namespace}/{name} is not labelled {opt_in_label}: "true", so the'
                f" operator will not use it; its owner can opt in with: kubectl label secret"
                f" -n {namespace} {name} {opt_in_label}=true"
            )
        data = secret.get("data") or {}
        if key not in data:
            raise LookupError(f"secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode()


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.is_success:
        body: dict[str, Any] = response.json()
        return body
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text
    raise ApiError(response.status_code, str(message)[:500])

"""Whom the external metrics server trusts, and how it asks what a caller may read.

Only the API server's aggregation layer may call the server: TLS verifies its front-proxy
client certificate against the *requestheader* client CA, read (at start) from a file or from
the ConfigMap ``kube-system/extension-apiserver-authentication`` that every API server writes
(reading it takes the Role ``extension-apiserver-authentication-reader``). A CA rotated later
needs a restart of the operator. Authorization is delegated to the API server with a
SubjectAccessReview (the ClusterRole ``system:auth-delegator`` allows creating them), as
Kubernetes' own aggregated servers do.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from sagaz_operator.adapters.kube import Kube, KubeError, resource_path
from sagaz_operator.domain import external_metrics
from sagaz_operator.domain.external_metrics import Identity, RequestHeaders
from sagaz_operator.errors import ConfigError

logger = logging.getLogger(__name__)

_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


@dataclass(frozen=True, kw_only=True)
class Trust:
    client_ca: str  # PEM: the CA that signs the front proxy's client certificate
    headers: RequestHeaders


async def load(
    kube: Kube, *, client_ca_file: Path | None, allowed_names: tuple[str, ...] | None
) -> Trust:
    """The front proxy's CA and header names; ``ConfigError`` when they cannot be found.

    With ``client_ca_file`` the ConfigMap is not read (header names are the defaults);
    ``allowed_names`` (None: as published) narrows which client certificates may proxy.
    """
    if client_ca_file is not None:
        try:
            pem = await asyncio.to_thread(client_ca_file.read_text)
        except OSError as error:
            raise ConfigError(f"SAGAZ_EXTERNAL_METRICS_CLIENT_CA_FILE: {error}") from error
        headers = RequestHeaders()
    else:
        namespace, name = external_metrics.AUTHENTICATION_CONFIGMAP
        try:
            found = await kube.get(resource_path("v1", "configmaps", namespace, name))
        except KubeError as error:
            raise ConfigError(f"cannot read ConfigMap {namespace}/{name}: {error}") from error
        data = (found or {}).get("data") or {}
        pem = data.get("requestheader-client-ca-file", "")
        if not pem:
            raise ConfigError(
                f"ConfigMap {namespace}/{name} has no requestheader-client-ca-file: the API"
                " server runs without the aggregation layer (--requestheader-client-ca-file)"
            )
        try:
            headers = RequestHeaders.from_configmap(data)
        except ValueError as error:
            raise ConfigError(f"ConfigMap {namespace}/{name}: {error}") from error
    if allowed_names is not None:
        headers = RequestHeaders(
            allowed_names=allowed_names,
            username_headers=headers.username_headers,
            group_headers=headers.group_headers,
            extra_prefixes=headers.extra_prefixes,
        )
    return Trust(client_ca=pem, headers=headers)


def server_context(*, cert_file: Path, key_file: Path, client_ca: str) -> ssl.SSLContext:
    """TLS that serves ``cert_file`` and verifies any client certificate against ``client_ca``.

    A client certificate is optional at the TLS level so that health probes (which present
    none) get through; every API path then refuses a request without one.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(
            f"SAGAZ_EXTERNAL_METRICS_CERT_FILE / _KEY_FILE ({cert_file}, {key_file}): {error}"
        ) from error
    try:
        context.load_verify_locations(cadata=client_ca)
    except ssl.SSLError as error:
        raise ConfigError(f"the front-proxy client CA is not a PEM certificate: {error}") from error
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def common_names(peercert: object) -> list[str] | None:
    """The subject common names of a verified peer certificate (``getpeercert()``)."""
    if not isinstance(peercert, dict) or not peercert:
        return None
    return [
        value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"
    ]


class AccessReviews:
    """Asks the API server whether a proxied user may read a metric (SubjectAccessReview)."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    async def allowed(self, who: Identity, *, namespace: str, metric: str) -> tuple[bool, str]:
        review = await self._kube.create(
            _REVIEWS, external_metrics.access_review(who, namespace=namespace, metric=metric)
        )
        status = review.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

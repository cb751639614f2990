"""The external metrics API (``external.metrics.k8s.io/v1beta1``) as the operator serves it.

The HPA an OutboxWorker owns asks the API server for ``sagaz_outbox_pending_events`` with the
label selector ``outboxworker=<name>``; the API server's aggregation layer proxies the request
to the operator, which answers with the pending rows of that OutboxWorker's outbox table. This
module holds the pure parts: the documents, the selector, and who the caller is.

**Who is calling.** The aggregator connects with its front-proxy client certificate (signed by
the *requestheader* client CA, one of the names in ``requestheader-allowed-names``) and says
who the real user is in headers (``X-Remote-User``, ``X-Remote-Group``, ``X-Remote-Extra-*`` by
default; the API server publishes the CA, the names and the headers in the ConfigMap
``kube-system/extension-apiserver-authentication``). The headers are believed only on such a
connection; anyone else gets 401. What the user may read is then the API server's decision,
asked with a SubjectAccessReview (``access_review``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import unquote

from sagaz_operator.api.definition import DNS_LABEL, DNS_SUBDOMAIN
from sagaz_operator.domain import workers

GROUP = "external.metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
#: The one label of the metric: the OutboxWorker's name (the HPA's ``matchLabels``).
WORKER_LABEL = "outboxworker"
#: The ConfigMap where the API server publishes how it proxies (``requestheader-*`` keys).
AUTHENTICATION_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")


class SelectorError(ValueError):
    """A label selector this API cannot answer; the message says why."""


@dataclass(frozen=True, kw_only=True)
class RequestHeaders:
    """How the front proxy names the user: the ``requestheader-*`` settings of the API server.

    ``allowed_names`` empty means any certificate the client CA signed may proxy (as in
    kube-apiserver's ``--requestheader-allowed-names``).
    """

    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)

    @classmethod
    def from_configmap(cls, data: Mapping[str, str]) -> RequestHeaders:
        """Read the ``requestheader-*`` keys (JSON lists) of extension-apiserver-authentication."""
        defaults = cls()

        def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            text = data.get(key)
            if not text:
                return default
            value = json.loads(text)
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"{key} is not a JSON list of strings: {text!r}")
            return tuple(value) or default

        return cls(
            allowed_names=names("requestheader-allowed-names", ()),
            username_headers=names("requestheader-username-headers", defaults.username_headers),
            group_headers=names("requestheader-group-headers", defaults.group_headers),
            extra_prefixes=names("requestheader-extra-headers-prefix", defaults.extra_prefixes),
        )


@dataclass(frozen=True, kw_only=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def identity(
    *,
    client_names: Sequence[str] | None,
    headers: Sequence[tuple[str, str]],
    settings: RequestHeaders,
) -> Identity | str:
    """The proxied user, or why the request is refused (a message for a 401).

    ``client_names`` are the common names of the verified client certificate, None when the
    client presented none (TLS already refused one the client CA did not sign).
    """
    if client_names is None:
        return "no client certificate: only the API server's front proxy may call this API"
    if settings.allowed_names and not set(client_names) & set(settings.allowed_names):
        return (
            f"client certificate {', '.join(client_names) or '(no common name)'} is not one of"
            f" the allowed front-proxy names {', '.join(settings.allowed_names)}"
        )
    folded = [(name.lower(), value) for name, value in headers]
    user = next(
        (
            value
            for wanted in settings.username_headers
            for name, value in folded
            if name == wanted.lower() and value
        ),
        "",
    )
    if not user:
        return f"the front proxy named no user ({', '.join(settings.username_headers)})"
    groups = tuple(
        value
        for wanted in settings.group_headers
        for name, value in folded
        if name == wanted.lower()
    )
    extra: dict[str, tuple[str, ...]] = {}
    for prefix in (p.lower() for p in settings.extra_prefixes):
        for name, value in folded:
            if name.startswith(prefix) and len(name) > len(prefix):
                key = unquote(name[len(prefix) :])  # percent-encoded in header names
                extra[key] = (*extra.get(key, ()), value)
    return Identity(user=user, groups=groups, extra=extra)


def access_review(who: Identity, *, namespace: str, metric: str) -> dict[str, object]:
    """The SubjectAccessReview asking whether ``who`` may read ``metric`` in ``namespace``."""
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": who.user,
            "groups": list(who.groups),
            "extra": {key: list(values) for key, values in who.extra.items()},
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "get",
                "group": GROUP,
                "version": VERSION,
                "resource": metric,
            },
        },
    }


def worker_of(selector: str) -> str:
    """The OutboxWorker a label selector names: exactly ``outboxworker=<name>`` (or ``==``).

    Anything else is refused rather than answered with a number the HPA would believe: a
    selector naming other labels, set-based requirements, or no worker at all.
    """
    wanted: dict[str, str] = {}
    for requirement in filter(None, (part.strip() for part in selector.split(","))):
        key, operator, value = _requirement(requirement)
        if operator is None or key in wanted:
            raise SelectorError(
                f"labelSelector {selector!r}: only one {WORKER_LABEL}=<name> is supported"
            )
        wanted[key] = value
    if set(wanted) != {WORKER_LABEL}:
        raise SelectorError(
            f"labelSelector {selector!r} must be {WORKER_LABEL}=<OutboxWorker name>"
        )
    name = wanted[WORKER_LABEL]
    if len(name) > 253 or not re.fullmatch(DNS_SUBDOMAIN, name):
        raise SelectorError(f"labelSelector {selector!r}: {name!r} is not an object name")
    return name


def is_namespace(name: str) -> bool:
    return len(name) <= 63 and re.fullmatch(DNS_LABEL, name) is not None


def _requirement(text: str) -> tuple[str, str | None, str]:
    for operator in ("==", "="):
        key, found, value = text.partition(operator)
        if found and "!" not in key and key.strip() and value.strip():
            return key.strip(), operator, value.strip()
    return text, None, ""


def resource_list() -> dict[str, object]:
    """Discovery: the metrics this server has (``GET /apis/external.metrics.k8s.io/v1beta1``)."""
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            {
                "name": workers.METRIC,
                "singularName": "",
                "namespaced": True,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            }
        ],
    }


def value_list(*, worker: str, pending: int, now: datetime) -> dict[str, object]:
    """The answer to the HPA: one value, the OutboxWorker's pending events."""
    return {
        "kind": "ExternalMetricValueList",
        "apiVersion": GROUP_VERSION,
        "metadata": {},
        "items": [
            {
                "metricName": workers.METRIC,
                "metricLabels": {WORKER_LABEL: worker},
                "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "value": str(pending),
            }
        ],
    }


def status(code: int, reason: str, message: str) -> dict[str, object]:
    """A ``metav1.Status`` failure, which the HPA shows in its conditions."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }

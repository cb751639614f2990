"""Test users with exactly the rights a test gives them, acting through impersonation.

The admin kubeconfig's user is in ``system:masters``, which may impersonate anyone; a client
made by ``as_user`` sends ``Impersonate-User``, so the API server authorises (and the admission
policy's ``authorizer`` checks) that user, not the admin.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from kubernetes import client

from harness import kube

#: What every test user may do in its namespace: write the operator's kinds.
SAGAZ_AUTHOR = {
    "apiGroups": ["sagaz.io"],
    "resources": ["sagas", "sagadefinitions", "outboxworkers"],
    "verbs": ["get", "list", "watch", "create", "update", "patch"],
}


def new_user(prefix: str = "alice") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def as_user(kubeconfig: str, user: str) -> client.ApiClient:
    api = kube.api_client(kubeconfig)
    api.set_default_header("Impersonate-User", user)
    return api


def grant(
    admin: client.ApiClient, *, namespace: str, user: str, name: str, rules: list[dict[str, Any]]
) -> None:
    """A Role ``name`` with ``rules`` in ``namespace``, bound to ``user``."""
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


def wait_allowed(
    api: client.ApiClient,
    *,
    verb: str,
    resource: str,
    namespace: str,
    group: str = "",
    name: str = "",
    within: float = 30,
) -> None:
    """Return once ``api``'s user may ``verb`` ``resource``: RBAC reaches the authorizer
    through an informer, a moment after the Role is written. Asked through a
    SelfSubjectAccessReview, the same authorizer the admission policy asks."""
    attributes = {"verb": verb, "resource": resource, "group": group, "namespace": namespace}
    if name:
        attributes["name"] = name
    reviews = client.AuthorizationV1Api(api)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        review = reviews.create_self_subject_access_review(
            {"spec": {"resourceAttributes": attributes}}
        )
        if review.status.allowed:
            return
        time.sleep(0.1)  # no watch exists for "the authorizer's cache caught up"
    raise TimeoutError(f"{verb} {resource} {name} in {namespace} still not allowed")

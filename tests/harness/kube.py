"""Small helpers over the official Kubernetes client for tests: namespaces and waiting.

Waiting uses the watch API (an event, not a sleep) with a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client, config, watch


def api_client(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=kubeconfig)


def wait_for(
    list_fn: Callable[..., Any],
    predicate: Callable[[Any], bool],
    *,
    timeout: float = 60,
    **list_kwargs: Any,
) -> Any:
    """Return the first object listed or watched by ``list_fn`` that satisfies ``predicate``.

    The API server may end a watch before its timeout (it closes watchers that fall behind,
    or their version expires): then this lists again and goes on watching, until the deadline.
    A 429 (a restarted API server answers "storage is (re)initializing" to custom resources
    for a moment) is tried again after its ``Retry-After``, as any client would.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            listed = list_fn(**list_kwargs)
        except client.ApiException as error:
            if error.status != 429 or deadline - time.monotonic() < 1:
                raise
            time.sleep(_retry_after(error))
            continue
        if isinstance(listed, dict):  # custom objects come as plain dicts
            items, version = listed["items"], listed["metadata"]["resourceVersion"]
        else:
            items, version = listed.items, listed.metadata.resource_version
        for item in items:
            if predicate(item):
                return item
        remaining = deadline - time.monotonic()
        if remaining < 1:
            raise TimeoutError(f"nothing matched within {timeout}s")
        stream = watch.Watch().stream(
            list_fn,
            resource_version=version,
            timeout_seconds=int(remaining),
            **list_kwargs,
        )
        try:
            for event in stream:
                if predicate(event["object"]):
                    return event["object"]
        except client.ApiException as error:
            if error.status != 410:  # Gone: the version expired; list again
                raise


def _retry_after(error: client.ApiException) -> float:
    try:
        return min(5.0, max(0.1, float((error.headers or {}).get("Retry-After", 1))))
    except ValueError:
        return 1.0


def wait_deleted(
    list_fn: Callable[..., Any], name: str, *, timeout: float = 60, **list_kwargs: Any
) -> bool:
    """True once no object named ``name`` is listed (watching for its deletion)."""
    selector = {"field_selector": f"metadata.name={name}"}
    listed = list_fn(**list_kwargs, **selector)
    items = listed["items"] if isinstance(listed, dict) else listed.items
    if not items:
        return True
    version = (
        listed["metadata"]["resourceVersion"]
        if isinstance(listed, dict)
        else listed.metadata.resource_version
    )
    stream = watch.Watch().stream(
        list_fn, resource_version=version, timeout_seconds=int(timeout), **list_kwargs, **selector
    )
    return any(event["type"] == "DELETED" for event in stream)


@contextmanager
def namespace(api: client.ApiClient, prefix: str = "test") -> Iterator[str]:
    """A fresh namespace whose default service account exists (so pods are admitted)."""
    core = client.CoreV1Api(api)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        wait_for(
            core.list_namespaced_service_account,
            lambda sa: sa.metadata.name == "default",
            namespace=name,
        )
        yield name
    finally:
        core.delete_namespace(name)

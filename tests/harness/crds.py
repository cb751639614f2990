"""Install the project's CustomResourceDefinitions into the test cluster.

Server-side apply with a fixed field manager makes ``install`` idempotent and safe to call from
every test module (and from concurrent sessions): the first call creates the CRDs, later calls
update them to whatever ``crds/`` holds now. CRDs are never uninstalled by tests, since
deleting one deletes every object of its kind, including other tests' objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from harness import kube, stack

CRDS = stack.REPO_ROOT / "crds"
FIELD_MANAGER = "sagaz-tests"


def install(api: client.ApiClient, directory: Path = CRDS, *, timeout: float = 60) -> list[str]:
    """Apply every CRD in ``directory`` and wait until each is Established; their names."""
    extensions = client.ApiextensionsV1Api(api)
    names: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            name = document["metadata"]["name"]
            extensions.patch_custom_resource_definition(
                name,
                document,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )
            names.append(name)
    for name in names:
        kube.wait_for(
            extensions.list_custom_resource_definition,
            _established,
            timeout=timeout,
            field_selector=f"metadata.name={name}",
        )
    return names


def _established(crd: Any) -> bool:
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)

"""The Helm chart from tests: the pinned helm, rendering, and the admission policy it ships.

The admission policy is applied from the chart's own rendering (release "sagaz", as
``hack/cluster.sh up`` applies it), so the tests check exactly what users install, also on an
existing cluster that ``make up`` never touched.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from harness import stack
from sagaz_operator.api.definition import GROUP, VERSION

CHART = stack.REPO_ROOT / "charts" / "sagaz-operator"
K8S_VERSION = "v1.34.4"  # hack/versions.sh
POLICY_TEMPLATE = "templates/admission-policy.yaml"
POLICY = "sagaz-sagaz-operator-requester-rights"  # its name (and its binding's) as release "sagaz"
PROBE_CALL = {
    "url": "http://probe.invalid/",
    "headersFrom": [{"name": "X", "secretKeyRef": {"name": "sagaz-policy-probe", "key": "k"}}],
}


def helm(cluster: stack.Cluster | None, *args: str) -> str:
    pinned = stack.STATE / "bin" / "helm"
    command = [str(pinned) if pinned.exists() else "helm"]
    if cluster is not None:
        command += ["--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.run(
        [*command, *args], check=True, capture_output=True, text=True, timeout=300
    ).stdout


def render(*settings: str, show_only: str | None = None, release: str = "sagaz") -> list[Any]:
    """The chart's manifests for ``--set`` ``settings``, as parsed documents."""
    args = ["template", release, str(CHART), "--kube-version", K8S_VERSION]
    for setting in settings:
        args += ["--set", setting]
    if show_only is not None:
        args += ["--show-only", show_only]
    return [doc for doc in yaml.safe_load_all(helm(None, *args)) if doc]


def kubectl(cluster: stack.Cluster, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [stack.kubectl(), "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def apply_admission_policy(cluster: stack.Cluster) -> None:
    """Apply (or re-apply) the chart's policy and binding; a no-op when they are in place."""
    manifest = yaml.safe_dump_all(render(show_only=POLICY_TEMPLATE))
    kubectl(cluster, "apply", "--server-side", "-f", "-", stdin=manifest)


def delete_admission_binding(cluster: stack.Cluster) -> None:
    kubectl(
        cluster,
        "delete",
        "validatingadmissionpolicybinding",
        POLICY,
        "--ignore-not-found",
        "--wait",
    )


def wait_enforced(author: client.ApiClient, namespace: str, *, enforced: bool) -> None:
    """Return once the API server does (or no longer does) enforce the policy for ``author``.

    The admission plugin learns of a new or deleted binding through an informer, a moment
    after the API call; there is nothing to watch for that, so a server-side dry run of a Saga
    naming a Secret the author may not read is repeated until its verdict is the expected one.
    """
    probe = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Saga",
        "metadata": {"name": "policy-probe"},
        "spec": {"definition": {"steps": [{"name": "a", "action": {"http": PROBE_CALL}}]}},
    }
    custom = client.CustomObjectsApi(author)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "sagas", probe, dry_run="All"
            )
            refused = False
        except ApiException as error:
            if POLICY not in (error.body or ""):
                raise
            refused = True
        if refused is enforced:
            return
        time.sleep(0.1)
    raise TimeoutError(f"the admission policy is still {'not ' if enforced else ''}enforced")

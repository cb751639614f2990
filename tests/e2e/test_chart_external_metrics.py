"""The chart's external metrics API: off by default, and complete when turned on.

The objects are checked against the real API server with a server-side dry run (schema,
RBAC role references); the pod itself cannot run here (kwok runs no containers), which is
why the running path is tested with a test operator in tests/e2e/test_autoscaling.py.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import chart, stack

pytestmark = pytest.mark.cluster

TEMPLATE = "templates/external-metrics.yaml"
SERVICE = "sagaz-sagaz-operator-external-metrics"


def _by_kind(documents: list[Any]) -> dict[str, Any]:
    return {d["kind"]: d for d in documents}


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True).stdout


def test_off_by_default_since_a_cluster_has_one_provider() -> None:
    documents = chart.render()
    assert not [d for d in documents if d["kind"] == "APIService"]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all(not e["name"].startswith("SAGAZ_EXTERNAL_METRICS") for e in env)


def test_on_it_registers_the_operator_with_a_certificate_the_aggregator_accepts(
    cluster: stack.Cluster, tmp_path: Path
) -> None:
    documents = chart.render("externalMetrics.enabled=true", show_only=TEMPLATE)
    kinds = _by_kind(documents)
    api = kinds["APIService"]["spec"]
    assert api["service"] == {"namespace": "default", "name": SERVICE, "port": 443}
    assert (api["group"], api["version"]) == ("external.metrics.k8s.io", "v1beta1")
    assert kinds["Service"]["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "ext-metrics"}
    ]
    secret = kinds["Secret"]["data"]
    assert api["caBundle"] == secret["ca.crt"]
    # The aggregator verifies the certificate for <service>.<namespace>.svc, against caBundle.
    for name in ("tls.crt", "ca.crt"):
        (tmp_path / name).write_bytes(base64.b64decode(secret[name]))
    names = _openssl("x509", "-in", str(tmp_path / "tls.crt"), "-noout", "-ext", "subjectAltName")
    assert f"DNS:{SERVICE}.default.svc" in names
    _openssl("verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "tls.crt"))
    assert {d["roleRef"]["name"] for d in documents if "roleRef" in d} == {
        "system:auth-delegator",
        "extension-apiserver-authentication-reader",
    }

    deployment = next(
        d for d in chart.render("externalMetrics.enabled=true") if d["kind"] == "Deployment"
    )
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["SAGAZ_EXTERNAL_METRICS_ADDRESS"] == "0.0.0.0:6443"
    assert env["SAGAZ_EXTERNAL_METRICS_CERT_FILE"] == "/etc/sagaz/external-metrics/tls.crt"
    assert {"name": "ext-metrics", "containerPort": 6443} in pod["containers"][0]["ports"]
    assert {"name": "external-metrics-tls", "secret": {"secretName": SERVICE}} in pod["volumes"]

    # Valid for the real API server (a dry run creates nothing).
    subprocess.run(
        [stack.kubectl(), "--kubeconfig", str(cluster.kubeconfig), "apply", "--dry-run=server",
         "-f", "-"],
        input=yaml.safe_dump_all(documents),
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip


def test_a_secret_of_your_own_needs_its_ca() -> None:
    with pytest.raises(subprocess.CalledProcessError) as refused:
        chart.render(
            "externalMetrics.enabled=true",
            "externalMetrics.existingSecret=mine",
            show_only=TEMPLATE,
        )
    assert "externalMetrics.caBundle" in refused.value.stderr
    kinds = _by_kind(
        chart.render(
            "externalMetrics.enabled=true",
            "externalMetrics.existingSecret=mine",
            "externalMetrics.caBundle=Q0E=",
            show_only=TEMPLATE,
        )
    )
    assert "Secret" not in kinds
    assert kinds["APIService"]["spec"]["caBundle"] == "Q0E="

"""The external metrics server over real TLS: who may call it, and what it answers.

Certificates are made with openssl as hack/certs.sh makes the cluster's: a front-proxy CA and
its client certificate, a serving certificate, and a stranger CA. The backlog behind the metric
is a fake of the server's ``PendingEvents`` port (the e2e test reads a real table).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness import stack
from harness.stack import free_port
from sagaz_operator.adapters.metrics_api import server, trust
from sagaz_operator.domain.external_metrics import Identity, RequestHeaders

METRIC = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/sagaz_outbox_pending_events"
WHO = {"X-Remote-User": "system:serviceaccount:kube-system:horizontal-pod-autoscaler"}


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(pki: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", f"/CN={name}", "-keyout", str(pki / f"{name}.key"),
        "-out", str(pki / f"{name}.crt"),
    )  # fmt: skip


def _cert(pki: Path, name: str, *, ca: str, san: str = "") -> None:
    extensions = pki / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", str(pki / f"{name}.key"), "-out", str(pki / f"{name}.csr"),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", str(pki / f"{ca}.crt"),
        "-CAkey", str(pki / f"{ca}.key"), "-CAcreateserial", "-days", "1",
        "-extfile", str(extensions), "-out", str(pki / f"{name}.crt"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pki = tmp_path_factory.mktemp("pki")
    for ca in ("serving-ca", "front-proxy-ca", "stranger-ca"):
        _ca(pki, ca)
    _cert(pki, "metrics", ca="serving-ca", san="IP:127.0.0.1")
    _cert(pki, "front-proxy-client", ca="front-proxy-ca")
    _cert(pki, "someone-else", ca="front-proxy-ca")
    _cert(pki, "stranger", ca="stranger-ca")
    return pki


@dataclass
class FakeBacklog:
    pending: dict[tuple[str, str], int]
    asked: list[tuple[str, str]]

    async def __call__(self, namespace: str, name: str) -> int:
        self.asked.append((namespace, name))
        if (namespace, name) not in self.pending:
            raise LookupError(f"no OutboxWorker {name} in namespace {namespace}")
        return self.pending[(namespace, name)]


class OnlyTheHpa:
    async def allowed(self, who: Identity, *, namespace: str, metric: str) -> tuple[bool, str]:
        return who.user == WHO["X-Remote-User"], "RBAC: no rule"


@dataclass
class Running:
    url: str
    pki: Path
    backlog: FakeBacklog

    def client(self, name: str | None) -> aiohttp.ClientSession:
        """A client trusting the serving CA, presenting ``name``'s certificate (None: none)."""
        context = ssl.create_default_context(cafile=self.pki / "serving-ca.crt")
        if name is not None:
            context.load_cert_chain(self.pki / f"{name}.crt", self.pki / f"{name}.key")
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))

    async def get(
        self, path: str, *, as_: str | None = "front-proxy-client", **params: str
    ) -> tuple[int, Any]:
        async with (
            self.client(as_) as session,
            session.get(self.url + path, params=params, headers=WHO) as answer,
        ):
            body = await answer.json() if answer.content_type == "application/json" else None
            return answer.status, body


@pytest.fixture
async def running(pki: Path) -> AsyncIterator[Running]:
    backlog = FakeBacklog(pending={("shop", "orders"): 3000}, asked=[])
    app = server.application(
        headers=RequestHeaders(allowed_names=("front-proxy-client",)),
        pending=backlog,
        authorizer=OnlyTheHpa(),
        clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
    )
    tls = trust.server_context(
        cert_file=pki / "metrics.crt",
        key_file=pki / "metrics.key",
        client_ca=(pki / "front-proxy-ca.crt").read_text(),
    )
    port = free_port()
    metrics = await server.MetricsServer.start(app, host="127.0.0.1", port=port, tls=tls)
    try:
        yield Running(url=f"https://127.0.0.1:{port}", pki=pki, backlog=backlog)
    finally:
        await metrics.close()


async def test_the_front_proxy_reads_the_pending_events(running: Running) -> None:
    status, body = await running.get(METRIC, labelSelector="outboxworker=orders")
    assert status == 200
    assert [(i["metricLabels"], i["value"]) for i in body["items"]] == [
        ({"outboxworker": "orders"}, "3000")
    ]
    status, body = await running.get("/apis/external.metrics.k8s.io/v1beta1")
    assert (status, body["resources"][0]["name"]) == (200, "sagaz_outbox_pending_events")


@pytest.mark.parametrize("who", [None, "someone-else"])
async def test_headers_without_the_front_proxys_certificate_are_refused(
    running: Running, who: str | None
) -> None:
    status, body = await running.get(METRIC, as_=who, labelSelector="outboxworker=orders")
    assert (status, body["reason"]) == (401, "Unauthorized")
    assert running.backlog.asked == []


async def test_a_certificate_of_another_ca_fails_the_handshake(running: Running) -> None:
    with pytest.raises(aiohttp.ClientError):
        await running.get(METRIC, as_="stranger", labelSelector="outboxworker=orders")
    assert running.backlog.asked == []


async def test_probes_need_no_certificate(running: Running) -> None:
    async with running.client(None) as session, session.get(running.url + "/healthz") as answer:
        assert (answer.status, await answer.text()) == (200, "ok")


async def test_a_user_rbac_refuses_is_forbidden(running: Running) -> None:
    async with (
        running.client("front-proxy-client") as session,
        session.get(
            running.url + METRIC,
            params={"labelSelector": "outboxworker=orders"},
            headers={"X-Remote-User": "mallory"},
        ) as answer,
    ):
        body = await answer.json()
    assert (answer.status, body["reason"]) == (403, "Forbidden")
    assert "mallory may not get" in body["message"]
    assert running.backlog.asked == []


@pytest.mark.parametrize(
    ("path", "selector", "status", "reason"),
    [
        (METRIC, "outboxworker=missing", 404, "NotFound"),
        (METRIC, "app=orders", 400, "BadRequest"),
        (METRIC.replace("sagaz_outbox_pending_events", "other_metric"), "", 404, "NotFound"),
    ],
)
async def test_what_it_cannot_answer_is_an_error_not_a_number(
    running: Running, path: str, selector: str, status: int, reason: str
) -> None:
    answer, body = await running.get(path, labelSelector=selector)
    assert (answer, body["reason"]) == (status, reason)
    assert "items" not in body


@pytest.mark.postgres
@pytest.mark.cluster
@pytest.mark.parametrize(
    ("key_file", "ca_file", "message"),
    [
        ("metrics.key", "stranger.key", "the front-proxy client CA is not a PEM certificate"),
        (
            "front-proxy-ca.crt",
            "front-proxy-ca.crt",
            "SAGAZ_EXTERNAL_METRICS_CERT_FILE / _KEY_FILE",
        ),
    ],
)
def test_the_operator_refuses_to_start_with_an_unusable_certificate(
    pki: Path, postgres_url: str, cluster: stack.Cluster, key_file: str, ca_file: str, message: str
) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("sagaz-operator")), "--standalone"],
        env={
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "SAGAZ_DATABASE_URL": postgres_url,
            "SAGAZ_EXTERNAL_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
            "SAGAZ_EXTERNAL_METRICS_CERT_FILE": str(pki / "metrics.crt"),
            "SAGAZ_EXTERNAL_METRICS_KEY_FILE": str(pki / key_file),
            "SAGAZ_EXTERNAL_METRICS_CLIENT_CA_FILE": str(pki / ca_file),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr

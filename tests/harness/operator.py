"""The operator as a real process, the way users run it (``sagaz-operator``).

Tests start it against the real cluster and database, kill it (``kill -9``) and start it
again; readiness is Kopf's liveness endpoint answering, not a sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from harness.stack import REPO_ROOT, free_port, wait_until_answering


class OperatorProcess:
    def __init__(
        self,
        *,
        kubeconfig: Path,
        database_url: str,
        namespaces: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        arguments: list[str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.database_url = database_url
        self.namespaces = namespaces
        self.log = log
        self.env = env or {}
        self.arguments = arguments or []  # more command-line flags, e.g. --verbose
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0
        self.api_port = 0
        # Stable across restarts of this process (a restarted replica takes back its Lease).
        self.replica_id = f"test-{uuid.uuid4().hex[:8]}"

    def start(self, *, timeout: float = 60) -> None:
        """Start the process and wait until it answers. The ports are free when chosen, not
        reserved: one another process took before the operator bound it ("address already in
        use") is chosen again, up to three times."""
        for attempt in range(3):
            offset = self.log.stat().st_size if self.log.exists() else 0
            try:
                self._launch(timeout=timeout)
                return
            except RuntimeError:
                said = self.log.read_bytes()[offset:]
                if b"address already in use" not in said or attempt == 2:
                    raise

    def _launch(self, *, timeout: float) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.api_port = free_port()
        command = [
            str(Path(sys.executable).with_name("sagaz-operator")),
            "--standalone",
            "--liveness",
            f"http://127.0.0.1:{self.port}/healthz",
        ]
        for namespace in self.namespaces:
            command += ["--namespace", namespace]
        command += self.arguments
        if os.environ.get("SAGAZ_TEST_DEBUG"):  # debug logs of every test operator
            command.append("--verbose")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "SAGAZ_DATABASE_URL": self.database_url,
            "SAGAZ_STATUS_INTERVAL": "0.3",
            "SAGAZ_METRICS_ADDRESS": f"127.0.0.1:{self.metrics_port}",
            "SAGAZ_API_ADDRESS": f"127.0.0.1:{self.api_port}",
            # Member Leases in the test's own namespace (they go with it), shorter than the
            # 15 s / 5 s defaults so that a killed replica's sagas move on sooner.
            "SAGAZ_REPLICA_ID": self.replica_id,
            "SAGAZ_LEASE_NAMESPACE": self._lease_namespace(),
            "SAGAZ_LEASE_DURATION": "10",
            "SAGAZ_LEASE_RENEW": "2",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )
        wait_until_answering(
            f"http://127.0.0.1:{self.port}/healthz",
            self.process,
            what="the operator",
            log=self.log,
            within=timeout,
        )

    def _lease_namespace(self) -> str:
        plain = [n for n in self.namespaces if not any(c in n for c in "*?!,[")]
        return plain[0] if len(plain) == 1 == len(self.namespaces) else "default"

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (all labels) on /metrics."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    @property
    def api_url(self) -> str:
        """The read API (``SAGAZ_API_ADDRESS``), as ``kubectl sagaz --api`` takes it."""
        return f"http://127.0.0.1:{self.api_port}"

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as answer:
            text: str = answer.read().decode()
            return text

    def kill(self) -> None:
        """``kill -9``: no shutdown handlers, no cleanup, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


async def wait_members(processes: list[OperatorProcess], count: int, *, within: float) -> None:
    """Until every replica's ``sagaz_members_seen`` is ``count``: they all see one another.
    Polled (0.3 s): membership is a metric, not an event to watch."""
    deadline = time.monotonic() + within
    while True:
        seen = [await asyncio.to_thread(p.metric, "sagaz_members_seen") for p in processes]
        if all(s == count for s in seen):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"replicas saw {seen} members, not {count} each")
        await asyncio.sleep(0.3)

"""Start or reuse the real local components through the project's own hack/ scripts.

A component that is already running (``make up``) is reused and left running; one the test
session starts is stopped when the session ends. ``SAGAZ_TEST_KUBECONFIG`` points the suite
at an existing cluster (e.g. kind) instead of the local control plane.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"
STATE = Path(os.environ.get("SAGAZ_STATE", REPO_ROOT / ".dev"))


def kubectl() -> str:
    """The pinned kubectl `make up` links into .dev/bin, else whatever is on PATH."""
    pinned = STATE / "bin" / "kubectl"
    return str(pinned) if pinned.exists() else "kubectl"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(
    port: int, process: subprocess.Popen[bytes], *, within: float = 15
) -> None:
    """Return once ``process`` accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)  # nothing to await: the port opening is not an event we can watch
            continue
        return
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {within}s")


def wait_until_answering(
    url: str, process: subprocess.Popen[bytes], *, what: str, log: Path, within: float
) -> None:
    """Return once ``url`` answers a GET with 2xx; ``what`` (which logs to ``log``) is named
    if ``process`` exits first or ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)  # nothing to await: readiness is not an event we can watch
    raise TimeoutError(f"{what} did not answer {url} within {within}s; see {log}")


def stop_process(process: subprocess.Popen[bytes] | None, *, within: float = 30) -> None:
    """SIGTERM ``process`` if it still runs, and SIGKILL it if it has not exited ``within``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(HACK / args[0]), *args[1:]],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=3600,
    )
    return done.stdout.strip()


def hack(*args: str) -> str:
    """Run a hack/ script, e.g. ``hack("jaeger.sh", "path")``: the last line it printed."""
    return _run(*args).splitlines()[-1]


def _succeeds(*args: str) -> bool:
    try:
        _run(*args)
    except subprocess.CalledProcessError:
        return False
    return True


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    local: bool  # the project's own control plane (kwok node, controller manager)


def token_kubeconfig(admin: Path, *, user: str, token: str, path: Path) -> Path:
    """Write to ``path`` a kubeconfig for the cluster of the ``admin`` kubeconfig that
    authenticates with ``token`` (a ServiceAccount's, as a pod has) as ``user``."""
    clusters = yaml.safe_load(admin.read_text())["clusters"]
    context = {"cluster": clusters[0]["name"], "user": user}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": context}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def cluster() -> Iterator[Cluster]:
    existing = os.environ.get("SAGAZ_TEST_KUBECONFIG")
    if existing:
        yield Cluster(kubeconfig=Path(existing), local=False)
        return
    was_running = _succeeds("cluster.sh", "status")
    _run("cluster.sh", "up")
    try:
        yield Cluster(kubeconfig=STATE / "admin.kubeconfig", local=True)
    finally:
        if not was_running:
            _run("cluster.sh", "down")


@contextmanager
def kafka() -> Iterator[str]:
    was_running = _succeeds("kafka.sh", "status")
    bootstrap = _run("kafka.sh", "start").splitlines()[-1]
    try:
        yield bootstrap
    finally:
        if not was_running:
            _run("kafka.sh", "stop")


class Postgres:
    """A throw-away PostgreSQL cluster of our own, which tests may stop and start."""

    def __init__(self, name: str) -> None:
        self._env = {"SAGAZ_PG_NAME": name}
        self.url = ""

    def start(self) -> str:
        self.url = _run("postgres.sh", "start", env=self._env).splitlines()[-1]
        return self.url

    def stop(self) -> None:
        _run("postgres.sh", "stop", env=self._env)

    def destroy(self) -> None:
        _run("postgres.sh", "destroy", env=self._env)


@contextmanager
def postgres(name: str = "session") -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster, destroyed afterwards."""
    instance = Postgres(f"postgres-test-{os.getpid()}-{name}")
    instance.start()
    try:
        yield instance
    finally:
        instance.destroy()

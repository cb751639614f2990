"""The examples in examples/ work as documented (the README's demo runs them too)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import stack
from harness.operator import OperatorProcess
from harness.plugin import Plugin
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster

EXAMPLES = stack.REPO_ROOT / "examples"
DEMO_ADDRESS = "127.0.0.1:18080"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[str]:
    """The demo shop on a free port (the demo's own may be running on 18080)."""
    port = stack.free_port()
    log = tmp_path_factory.mktemp("shop") / "shop.log"
    command = [sys.executable, str(EXAMPLES / "shop.py"), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--database-url", postgres_url],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        stack.wait_until_listening(port, process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


def example(path: Path, address: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(path.read_text().replace(DEMO_ADDRESS, address))
    return body


async def run_example(
    sagas: Sagas, shop: str, directory: Path, sagas_by_file: dict[str, str]
) -> dict[str, str]:
    """Apply the example's definition and sagas; the sagas' final phases."""
    definition = example(directory / "definition.yaml", shop)
    await sagas.define(definition["metadata"]["name"], definition["spec"])
    for file in sagas_by_file:
        saga = example(directory / file, shop)
        await sagas.start(saga["metadata"]["name"], saga["spec"])
    return await sagas.wait_all(list(sagas_by_file.values()))


async def test_order_saga_example(sagas: Sagas, shop: str) -> None:
    phases = await run_example(
        sagas,
        shop,
        EXAMPLES / "order-saga",
        {"saga.yaml": "order-1001", "saga-declined.yaml": "order-1002"},
    )

    assert phases == {"order-1001": "Succeeded", "order-1002": "Compensated"}
    declined = await sagas.get("order-1002")
    assert [s["phase"] for s in declined["status"]["steps"]] == ["Compensated", "Failed", "Skipped"]
    assert "card declined" in declined["status"]["steps"][1]["error"]


@pytest.mark.usefixtures("kwok_node")
async def test_mixed_http_and_job_example(sagas: Sagas, shop: str) -> None:
    phases = await run_example(
        sagas,
        shop,
        EXAMPLES / "mixed-saga",
        {"saga.yaml": "order-2001", "saga-declined.yaml": "order-2002"},
    )

    assert phases == {"order-2001": "Succeeded", "order-2002": "Compensated"}
    done = await sagas.get("order-2001")
    assert done["status"]["steps"][1]["output"] == {"parcel": "P-2001"}
    declined = await sagas.get("order-2002")
    assert [s["phase"] for s in declined["status"]["steps"]] == [
        "Compensated",
        "Compensated",
        "Failed",
        "Skipped",
    ]


def outage(shop: str, path: str, *, down: bool) -> None:
    request = urllib.request.Request(
        f"http://{shop}/admin/outage",
        data=json.dumps({"path": path, "down": down}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


async def test_stuck_release_example_is_retried_once_the_warehouse_is_back(
    sagas: Sagas, shop: str, cluster: stack.Cluster, operator: OperatorProcess
) -> None:
    await asyncio.to_thread(outage, shop, "/inventory/release", down=True)
    try:
        phases = await run_example(
            sagas, shop, EXAMPLES / "order-saga", {"saga-stuck-release.yaml": "order-1003"}
        )
    finally:
        await asyncio.to_thread(outage, shop, "/inventory/release", down=False)
    assert phases == {"order-1003": "CompensationFailed"}

    plugin = Plugin(cluster.kubeconfig, sagas.namespace, operator.api_url)
    result = await plugin("retry", "order-1003", "--wait")

    assert (result.code, result.out.splitlines()[-1]) == (
        0,
        "saga.sagaz.io/order-1003 is Compensated",
    )

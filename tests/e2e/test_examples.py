"""The examples in examples/ work as documented (the README's demo runs them too)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import stack
from harness.sagas import Sagas

pytestmark = pytest.mark.cluster

EXAMPLES = stack.REPO_ROOT / "examples"
DEMO_ADDRESS = "127.0.0.1:18080"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo shop on a free port (the demo's own may be running on 18080)."""
    port = stack.free_port()
    log = tmp_path_factory.mktemp("shop") / "shop.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / "shop.py"), "--port", str(port)],
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


async def test_order_saga_example(sagas: Sagas, shop: str) -> None:
    directory = EXAMPLES / "order-saga"
    definition = example(directory / "definition.yaml", shop)
    await sagas.define(definition["metadata"]["name"], definition["spec"])
    for name in ("saga.yaml", "saga-declined.yaml"):
        saga = example(directory / name, shop)
        await sagas.start(saga["metadata"]["name"], saga["spec"])

    phases = await sagas.wait_all(["order-1001", "order-1002"])

    assert phases == {"order-1001": "Succeeded", "order-1002": "Compensated"}
    declined = await sagas.get("order-1002")
    assert [s["phase"] for s in declined["status"]["steps"]] == ["Compensated", "Failed", "Skipped"]
    assert "card declined" in declined["status"]["steps"][1]["error"]

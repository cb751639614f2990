"""``make bench`` keeps working: every system runs the diamond at N=1, and the memory
scenario and the relay run small. Benchmarks are not tests: nothing here looks at a time;
what is checked is that each system ran every variant to the right end (the bench exits
non-zero when a saga is missing, ends in the wrong phase, or a participant request is
missing or repeated) and that the report has every section.

The Temporal CLI is built once per machine if it is not cached (a few minutes); without Go
and without the cached binary the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import stack

TEMPORAL = (
    Path(os.environ.get("SAGAZ_CACHE", Path.home() / ".cache" / "sagaz")) / "bin" / "temporal-"
)
SYSTEMS = (
    "Sagaz Operator",
    "Temporal (dev server, SQLite file)",
    "sagaz library (in memory)",
    "floor (aiohttp)",
    "floor (httpx)",
)


def _temporal_cached() -> bool:
    return any(TEMPORAL.parent.glob(f"{TEMPORAL.name}*/temporal"))


pytestmark = [
    pytest.mark.cluster,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.skipif(
        shutil.which("go") is None and not _temporal_cached(),
        reason="needs Go to build the Temporal CLI (or the CLI in the cache)",
    ),
]


def test_every_system_runs_every_variant_at_n_1(
    cluster: stack.Cluster, kafka_bootstrap: str, tmp_path: Path
) -> None:
    output = tmp_path / "results.md"
    command = [str(stack.HACK / "bench.sh"), "--n", "1", "--scale", "20"]
    command += ["--relay-events", "2000", "--relay-seconds", "1"]
    command += ["--replicas", "20", "--replica-rounds", "1"]
    command += ["--output", str(output), "--no-readme"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = output.read_text()
    for system in SYSTEMS:
        for variant in ("instant", "20ms", "d-fails"):
            assert f"| {system} | {variant} | 1 |" in report
    assert "## Memory with many Sagas in the cluster" in report
    assert "20 Sagas in one namespace" in report
    assert "## Outbox relay" in report
    assert "## Scale-out: 1, 2 and 3 operator replicas" in report
    assert "| 3 |" in report
    assert "failed:" not in report

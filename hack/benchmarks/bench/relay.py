"""The outbox relay's figures: hack/benchmarks/outbox_relay.py, run as it is, its output kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "outbox_relay.py"


def relay(*, events: int, seconds: float, rate: float = 200.0) -> list[str]:
    command = [sys.executable, str(SCRIPT), "--events", str(events), "--workers", "1", "2", "4"]
    command += ["--seconds", str(seconds), "--rate", str(rate)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError("outbox_relay.py failed:\n" + "\n".join(tail))
    shown = f"python hack/benchmarks/outbox_relay.py --events {events} --seconds {seconds:g}"
    return [f"`{shown}`:", "", "```", *done.stdout.strip().splitlines(), "```"]

"""The example participants of examples/ as real processes, and their YAML pointed at them.

An example's YAML names its participant at a fixed demo address (e.g. 127.0.0.1:18081); tests
run the participant on a free port and rewrite the address.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from harness import stack

EXAMPLES = stack.REPO_ROOT / "examples"


def load(path: Path, *, address: str, demo_address: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(path.read_text().replace(demo_address, address))
    return body


class ParticipantProcess:
    """``python <script> <args...> --port <free port>``, logging to ``log``; restartable."""

    def __init__(self, script: Path, args: list[str], *, log: Path, port_flag: bool = True):
        self.script = script
        self.args = args
        self.log = log
        self.port = stack.free_port()
        self.port_flag = port_flag
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-u", str(self.script), *self.args]
        if self.port_flag:
            command += ["--port", str(self.port)]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        stack.wait_until_listening(self.port, self.process, within=30)

    def kill(self) -> None:
        """``kill -9``: whatever it was doing is cut off mid-transaction."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

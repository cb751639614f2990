"""``kubectl sagaz`` as users run it: the installed ``kubectl-sagaz`` executable, a process.

Tests run it in a worker thread, so participants serving in the test's event loop keep
answering while it waits.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

EXECUTABLE = Path(sys.executable).with_name("kubectl-sagaz")


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Plugin:
    kubeconfig: Path
    namespace: str
    api: str | None

    async def __call__(self, *args: str, within: float = 180) -> Result:
        command = [str(EXECUTABLE), *args]
        if args and args[0] != "validate":
            command += ["--kubeconfig", str(self.kubeconfig), "-n", self.namespace]
            if self.api:
                command += ["--api", self.api]
        # Without --api the plugin must find the API itself, whatever the test's shell exports.
        env = {k: v for k, v in os.environ.items() if k != "SAGAZ_API_URL"}
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=within, env=env
        )
        return Result(done.returncode, done.stdout, done.stderr)

"""Faults of the local API server, for the outage tests: freeze it, restart it, expire watches.

Only the API server the test stack started (its pid is in ``.dev/kube-apiserver.pid``, written
by ``hack/cluster.sh``) is touched. A frozen one (SIGSTOP) keeps its sockets open but answers
nothing, so clients wait out their timeouts — the unkind outage; ``frozen`` always sends
SIGCONT on the way out, whatever happens inside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from harness.stack import HACK, STATE


def pid() -> int:
    return int((STATE / "kube-apiserver.pid").read_text())


@contextmanager
def frozen() -> Iterator[None]:
    """The API server stopped (SIGSTOP) inside the block, running again after it."""
    process = pid()
    os.kill(process, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(process, signal.SIGCONT)


def restart(*, expire_watches: bool = False) -> None:
    """Stop the API server and start it again (``hack/cluster.sh restart-apiserver``); with
    ``expire_watches`` every watch resumed afterwards from an older version gets 410 Gone."""
    command = [str(HACK / "cluster.sh"), "restart-apiserver"]
    if expire_watches:
        command.append("--expire-watches")
    subprocess.run(command, check=True, capture_output=True, timeout=300)

"""Where the API server's CPU goes while the operator runs: its own CPU profile (Go's pprof,
``/debug/pprof/profile``, which the local cluster serves: hack/cluster.sh starts it with
``--profiling=true``), summarized with ``go tool pprof``.

The operator's profile says what the operator spends; on two cores the API server and etcd
spend two to three times as much per saga, so this is the profile that shows the limit.
Each line is a stage of request handling, as the share of all samples whose stack passes
through it (a stack may pass through several: a create's admission is inside the create).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from bench import kube

SECONDS = 30  # the profile's window, from the first create: a run of N = 1000 takes 10-20 s

# (what, a frame whose inclusive share says it): the first frame of the listing that matches.
STAGES: tuple[tuple[str, str], ...] = (
    ("PATCH (Saga status)", r"handlers\.\(\*patcher\)\.patchResource"),
    ("POST (Saga and Event creates)", r"registry\.\(\*Store\)\.create$"),
    ("admission policies (CEL)", r"policy/validating\.\(\*dispatcher\)\.Dispatch$"),
    ("GET one object", r"registry\.\(\*Store\)\.Get$"),
    ("LIST", r"registry\.\(\*Store\)\.List$"),
    ("watch streams (encoding and sending events)", r"\(\*WatchServer\)\.HandleHTTP$"),
    (
        "client certificates (x509 chains verified per request)",
        r"^crypto/x509\.\(\*Certificate\)\.Verify$",
    ),
    (
        "etcd client (every request to etcd)",
        r"etcd/client/v3\.\(\*Client\)\.unaryClientInterceptor",
    ),
    ("garbage collection (background marking)", r"^runtime\.gcBgMarkWorker$"),
    ("memory allocation", r"^runtime\.mallocgc$"),
)


async def capture(client: kube.Kube, *, seconds: int = SECONDS) -> bytes | None:
    """The API server's CPU profile over the next ``seconds`` (None when the server does not
    serve profiles: ``--profiling=false``, or a user without the right)."""
    try:
        return await client.raw(f"/debug/pprof/profile?seconds={seconds}", seconds=seconds + 30)
    except RuntimeError:
        return None


def summarize(path: Path, *, top: int = 12) -> list[str]:
    go = shutil.which("go")
    if go is None:
        return ["(no `go` on PATH to read the API server's profile)"]
    listing = subprocess.run(
        [go, "tool", "pprof", "-top", "-cum", "-nodecount=2000", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [_row(line) for line in listing.splitlines()]
    functions = [row for row in rows if row is not None]
    total = re.search(r"Total samples = ([\d.]+)s", listing)
    duration = re.search(r"Duration: ([\d.]+)s", listing)
    lines = [
        f"{total[1] if total else '?'} s of CPU samples in a {duration[1] if duration else '?'} "
        "s window from the first create (`go tool pprof -top -cum` of "
        "`/debug/pprof/profile`). Inclusive share of the samples, by stage:",
        "",
    ]
    for what, pattern in STAGES:
        share = next((cum for name, _, cum in functions if re.search(pattern, name)), 0.0)
        lines.append(f"- {what}: {share:.0f}%")
    lines += ["", "Self time, by function:", ""]
    by_self = sorted(functions, key=lambda row: row[1], reverse=True)[:top]
    lines += [f"- {name}: {flat:.1f}%" for name, flat, _ in by_self]
    return lines


_ROW = re.compile(r"^\s*[\d.]+\w*\s+([\d.]+)%\s+[\d.]+%\s+[\d.]+\w*\s+([\d.]+)%\s+(.+)$")


def _row(line: str) -> tuple[str, float, float] | None:
    """(function, self %, inclusive %) from a line of ``pprof -top``."""
    match = _ROW.match(line)
    if match is None:
        return None
    return match[3].removesuffix(" (inline)").strip(), float(match[1]), float(match[2])

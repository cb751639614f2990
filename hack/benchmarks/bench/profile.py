"""Where the operator's CPU goes: a summary of ``py-spy record --format raw`` output.

Raw output is one collapsed stack per line (``outer;...;leaf count``). Samples are counted
per leaf function (self time) and per package of the frames on the stack (inclusive: a
stack counts once for every package it passes through), which is what answers "what does
the operator spend its CPU on".
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _package(file: str) -> str:
    """The package a frame's file belongs to: py-spy names files relative to their root
    (``httpx/_client.py``, ``asyncio/events.py``); the operator's own by layer."""
    parts = Path(file).parts
    if not parts:
        return "?"
    if parts[0] == "sagaz_operator" and len(parts) > 2:
        return f"sagaz_operator/{parts[1]}"
    return parts[0].removesuffix(".py")


def _below_the_loop(named: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The frames of what the event loop runs: the loop's own callers (the console script,
    ``kopf.run``, ``asyncio.run``) are on every stack and say nothing about where CPU goes."""
    for index, (func, file) in enumerate(named):
        if func == "BaseEventLoop._run_once" and file.startswith("asyncio/"):
            return named[index + 1 :]
    return named


def summarize(path: Path, *, batch: str, top: int = 12) -> list[str]:
    leaves: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    ours: Counter[str] = Counter()  # the operator's adapter/service functions, inclusive
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_FRAME.match(frame) for frame in stack.split(";")]
        named = [(m["func"], m["file"]) for m in frames if m is not None]
        if not named:
            continue
        func, file = named[-1]
        leaves[f"{func} ({file})"] += count
        for package in {_package(file) for _, file in _below_the_loop(named)}:
            packages[package] += count
        for name in {
            f"{func} ({file})"
            for func, file in named
            if file.startswith(("sagaz_operator/adapters/", "sagaz_operator/services/"))
        }:
            ours[name] += count
    if not total:
        return ["(no samples)"]
    lines = [
        f"{total:,} samples at 100 Hz of {batch} (py-spy, wall-clock samples of the main thread "
        "include idle waiting in the event loop's select).",
        "",
    ]
    lines += ["Inclusive, by package on the stack (below the event loop):", ""]
    lines += [f"- {name}: {n / total:.0%}" for name, n in packages.most_common(top)]
    lines += ["", "Inclusive, by the operator's own adapter and service functions:", ""]
    lines += [f"- {name}: {n / total:.0%}" for name, n in ours.most_common(top)]
    lines += ["", "Self time, by function:", ""]
    lines += [f"- {name}: {n / total:.1%}" for name, n in leaves.most_common(top)]
    return lines

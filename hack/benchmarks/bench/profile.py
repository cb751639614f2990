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
    parts = Path(file).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if "sagaz_operator" in parts:
        index = parts.index("sagaz_operator")
        return "/".join(parts[index : index + 2]).removesuffix(".py")
    return "stdlib:" + Path(file).stem if "python3" in file else Path(file).stem


def summarize(path: Path, *, top: int = 12) -> list[str]:
    leaves: Counter[str] = Counter()
    packages: Counter[str] = Counter()
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
        leaves[f"{func} ({_package(file)})"] += count
        for package in {_package(file) for _, file in named}:
            packages[package] += count
    if not total:
        return ["(no samples)"]
    lines = [f"{total:,} samples at 100 Hz. Inclusive, by package on the stack:", ""]
    lines += [f"- {name}: {n / total:.0%}" for name, n in packages.most_common(top)]
    lines += ["", "Self time, by function:", ""]
    lines += [f"- {name}: {n / total:.1%}" for name, n in leaves.most_common(top)]
    return lines

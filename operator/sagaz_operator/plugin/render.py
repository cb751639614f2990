"""How ``kubectl sagaz`` shows things: kubectl-like tables, a step tree, Mermaid and DOT."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sagaz_operator.domain.model import Definition

_PHASE_COLOURS = {
    "Succeeded": "#c8e6c9",
    "Running": "#bbdefb",
    "Compensating": "#ffe0b2",
    "Compensated": "#fff9c4",
    "CompensationFailed": "#ffcdd2",
    "Failed": "#ffcdd2",
    "Skipped": "#eeeeee",
    "Pending": "#ffffff",
}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded like ``kubectl get`` (three spaces between them)."""
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    lines = [
        "   ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def saga_list(items: Sequence[Mapping[str, Any]], *, namespaces: bool, now: datetime) -> str:
    headers = ["NAME", "PHASE", "DEFINITION", "PROGRESS", "DURATION", "AGE"]
    if namespaces:
        headers.insert(0, "NAMESPACE")
    rows = []
    for item in items:
        row = [
            item["name"],
            item["phase"],
            item["definition"]["name"] or "(inline)",
            item.get("progress") or "",
            _duration(item.get("startedAt") or item["createdAt"], item.get("finishedAt"), now),
            _age(item["createdAt"], now),
        ]
        rows.append([item["namespace"], *row] if namespaces else row)
    return table(headers, rows)


def saga_tree(saga: Mapping[str, Any], *, now: datetime) -> str:
    """The saga and its steps, like ``argo get``."""
    status = saga["status"]
    lines = [
        f"Name:        {saga['name']}",
        f"Namespace:   {saga['namespace']}",
        f"UID:         {saga['uid']}",
        f"Definition:  {saga['definition']['name'] or '(inline)'} "
        f"(generation {saga['definition']['generation']})",
        f"Phase:       {status['phase']}",
        f"Progress:    {status['progress']}",
        f"Duration:    {status.get('duration') or '-'}",
    ]
    if status.get("message"):
        lines.append(f"Message:     {status['message']}")
    if status.get("observedRetry"):
        lines.append(f"Retries:     {status['observedRetry']}")
    lines.append("")
    steps = status.get("steps") or []
    rows = []
    for index, step in enumerate(steps):
        branch = "└─" if index == len(steps) - 1 else "├─"
        attempts = str(step["attempts"])
        if step.get("compensationAttempts"):
            attempts += f" (+{step['compensationAttempts']} undo)"
        rows.append(
            [
                f"{branch} {step['name']}",
                step["phase"],
                attempts,
                _duration(step.get("startedAt"), step.get("finishedAt"), now)
                if step.get("startedAt")
                else "",
                _one_line(step.get("error") or ""),
            ]
        )
    lines.append(table(["STEP", "PHASE", "ATTEMPTS", "DURATION", "LAST ERROR"], rows))
    return "\n".join(lines)


def history(items: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for item in items:
        event = item["event"]
        rows.append(
            [
                str(item["seq"]),
                _clock(event.get("at") or item["recordedAt"]),
                item["type"],
                str(event.get("step") or ""),
                str(event.get("attempt") or ""),
                _one_line(_detail(item["type"], event)),
            ]
        )
    return table(["SEQ", "TIME", "EVENT", "STEP", "ATTEMPT", "DETAIL"], rows)


def mermaid(title: str, definition: Definition, phases: Mapping[str, str]) -> str:
    ids = {step.name: _node_id(step.name) for step in definition.steps}
    lines = [f"%% {title}", "flowchart TD"]
    for step in definition.steps:
        label = step.name + (f"<br/>{phases[step.name]}" if step.name in phases else "")
        kind = "" if step.kind.value == "Compensatable" else f"<br/><i>{step.kind.value}</i>"
        lines.append(f'    {ids[step.name]}["{label}{kind}"]')
    for step in definition.steps:
        lines.extend(f"    {ids[dep]} --> {ids[step.name]}" for dep in step.depends_on)
    used = sorted(set(phases.values()))
    for phase in used:
        lines.append(f"    classDef {phase} fill:{_PHASE_COLOURS.get(phase, '#ffffff')}")
    for step in definition.steps:
        if step.name in phases:
            lines.append(f"    class {ids[step.name]} {phases[step.name]}")
    return "\n".join(lines)


def dot(title: str, definition: Definition, phases: Mapping[str, str]) -> str:
    lines = [
        f"digraph {json.dumps(title)} {{",
        "    rankdir=TB;",
        "    node [shape=box, style=filled];",
    ]
    for step in definition.steps:
        label = step.name + (f"\\n{phases[step.name]}" if step.name in phases else "")
        if step.kind.value != "Compensatable":
            label += f"\\n({step.kind.value})"
        colour = _PHASE_COLOURS.get(phases.get(step.name, "Pending"), "#ffffff")
        lines.append(f'    "{step.name}" [label="{label}", fillcolor="{colour}"];')
    for step in definition.steps:
        lines.extend(f'    "{dep}" -> "{step.name}";' for dep in step.depends_on)
    lines.append("}")
    return "\n".join(lines)


def _detail(kind: str, event: Mapping[str, Any]) -> str:
    if kind == "SuspendChanged":
        return "suspended" if event.get("suspended") else "resumed"
    if kind in ("RetryRequested", "RetryRefused"):
        text = f"request {event.get('request')}"
        return f"{text}: {event['message']}" if event.get("message") else text
    for key in ("error", "message"):
        if event.get(key):
            prefix = f"{event['outcome']}: " if event.get("outcome") else ""
            return prefix + str(event[key])
    if event.get("output") is not None:
        return "output " + json.dumps(event["output"], separators=(",", ":"))[:120]
    return ""


def _node_id(name: str) -> str:
    return "s_" + name.replace("-", "_")


def _one_line(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _clock(text: str) -> str:
    return _parse(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _duration(start: str | None, end: str | None, now: datetime) -> str:
    if not start:
        return ""
    seconds = ((_parse(end) if end else now) - _parse(start)).total_seconds()
    return _span(seconds, fine=True)


def _age(created: str, now: datetime) -> str:
    return _span((now - _parse(created)).total_seconds(), fine=False)


def _span(seconds: float, *, fine: bool) -> str:
    if fine and seconds < 10:
        return f"{max(seconds, 0):.1f}s"
    whole = int(max(seconds, 0))
    if whole < 120:
        return f"{whole}s"
    if whole < 7200:
        return f"{whole // 60}m{whole % 60}s"
    if whole < 172800:
        return f"{whole // 3600}h{whole % 3600 // 60}m"
    return f"{whole // 86400}d"

"""Render a bench report as Markdown: the comparison table, the operator's own costs, the
10,000-Saga memory scenario, the outbox relay, and the context needed to read them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench import kube
from bench.figures import Figures

OPERATOR = "Sagaz Operator"


@dataclass
class Report:
    header: list[tuple[str, str]]  # (what, value): date, machine, versions, command, ...
    figures: list[Figures] = field(default_factory=list)
    scale: list[str] = field(default_factory=list)  # lines, already worded
    replicas: list[str] = field(default_factory=list)  # lines, already worded
    relay: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    apiserver_profile: list[str] = field(default_factory=list)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:,.1f}"


def _num(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _share(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"


def comparison(figures: list[Figures]) -> list[str]:
    """One row per (system, variant, N); x op = this system's sagas/s over the operator's."""
    operator = {(f.variant, f.n): f for f in figures if f.system == OPERATOR}
    lines = [
        "| system | variant | N | sagas/s | x operator | steps/s "
        "| saga p50 / p99 ms | step overhead p50 / p99 ms | participant CPU | wrong |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = sorted(figures, key=lambda f: (f.variant.value, f.n, f.system != OPERATOR))
    for f in order:
        base = operator.get((f.variant, f.n))
        ratio = (
            f"{f.sagas_per_s / base.sagas_per_s:,.1f}x"
            if base is not None and base.sagas_per_s > 0
            else "-"
        )
        lines.append(
            f"| {f.system} | {f.variant.value} | {f.n} | {_num(f.sagas_per_s)} | {ratio} "
            f"| {_num(f.steps_per_s)} | {_ms(f.latency_p50)} / {_ms(f.latency_p99)} "
            f"| {_ms(f.overhead_p50)} / {_ms(f.overhead_p99)} "
            f"| {_share(f.extra.get('participant_busy', math.nan))} | {f.wrong} |"
        )
    return lines


def operator_costs(figures: list[Figures]) -> list[str]:
    rows = [f for f in figures if f.system == OPERATOR]
    lines = [
        "| variant | N | CPU s / saga | apiserver + etcd CPU s / saga | peak RSS MiB "
        "| apiserver writes / saga | PostgreSQL commits / saga | creating the N Sagas took s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in sorted(rows, key=lambda f: (f.variant.value, f.n)):
        e = f.extra
        lines.append(
            f"| {f.variant.value} | {f.n} | {e.get('cpu_s_per_saga', math.nan):.3f} "
            f"| {e.get('control_plane_cpu_s_per_saga', math.nan):.3f} "
            f"| {e.get('peak_rss_mib', math.nan):.0f} "
            f"| {e.get('apiserver_writes_per_saga', math.nan):.1f} "
            f"| {e.get('pg_xact_per_saga', math.nan):.1f} | {e.get('create_s', math.nan):.1f} |"
        )
    biggest = max(rows, key=lambda f: f.n, default=None)
    if biggest is not None:
        lines += ["", f"Apiserver writes per saga by verb and resource (N={biggest.n}):", ""]
        for f in sorted((r for r in rows if r.n == biggest.n), key=lambda r: r.variant.value):
            lines.append(f"- {f.variant.value}: {kube.worded(f.extra)}")
    return lines


def render(report: Report) -> str:
    out: list[str] = ["# Benchmark results", ""]
    out += [f"- **{what}**: {value}" for what, value in report.header]
    out += ["", "## The diamond saga, N started at once", ""]
    out += comparison(report.figures)
    out += ["", "## The operator's own costs", ""]
    out += operator_costs(report.figures)
    sections: Iterable[tuple[str, list[str]]] = (
        ("## Memory with many Sagas in the cluster", report.scale),
        ("## Scale-out: 1, 2 and 3 operator replicas", report.replicas),
        ("## Outbox relay (hack/benchmarks/outbox_relay.py)", report.relay),
        ("## How to read this", report.notes),
        ("## Operator profile", report.profile),
        ("## API server profile (same run)", report.apiserver_profile),
    )
    for title, lines in sections:
        if lines:
            out += ["", title, "", *lines]
    return "\n".join(out) + "\n"

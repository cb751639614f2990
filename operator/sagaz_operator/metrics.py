"""Every Prometheus metric the operator and the outbox workers export, in one place.

All names carry the ``sagaz_`` prefix; labels are bounded (phases, results, step kinds,
OutboxWorker names) — never a saga's name or uid, which would grow without limit.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

sagas_finished = Counter(
    "sagaz_sagas_finished_total", "Sagas that reached a terminal phase.", ["phase"]
)
sagas_active = Gauge("sagaz_sagas_active", "Sagas this operator process is executing.")
saga_duration = Histogram(
    "sagaz_saga_duration_seconds",
    "From start to terminal phase.",
    ["phase"],
    buckets=DURATION_BUCKETS,
)
step_attempts = Counter("sagaz_step_attempts_total", "Step action attempts by result.", ["result"])
step_duration = Histogram(
    "sagaz_step_duration_seconds",
    "From a step's first dispatch to its success.",
    buckets=DURATION_BUCKETS,
)
compensations = Counter("sagaz_compensations_total", "Compensation attempts by result.", ["result"])
journal_events = Counter(
    "sagaz_journal_events_total", "Events appended to the saga journal.", ["type"]
)

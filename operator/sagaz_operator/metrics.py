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

# Status convergence (services/statuses.py, services/resync.py).
status_write_retries = Counter(
    "sagaz_status_write_retries_total",
    "Failed tries to write a finished saga's status or terminal Event, to be repeated.",
)
status_outbox_pending = Gauge(
    "sagaz_status_outbox_pending", "Finished sagas whose status or Event is still to be written."
)
status_outbox_dropped = Counter(
    "sagaz_status_outbox_dropped_total",
    "Pending status writes dropped because the status outbox was full (the resync repairs them).",
)
status_repairs = Counter(
    "sagaz_status_repairs_total", "Saga statuses the resync rewrote because they disagreed."
)

# The outbox relay (sagaz-outbox-worker). ``outboxworker`` is the OutboxWorker's name: one per
# worker process. Table-wide gauges (pending, oldest, dead) are the same in every replica of a
# worker: aggregate them with max(), not sum(). Counters count this replica's own work.
outbox_pending = Gauge(
    "sagaz_outbox_pending_events", "Rows waiting to be published.", ["outboxworker"]
)
outbox_oldest_pending = Gauge(
    "sagaz_outbox_oldest_pending_seconds",
    "Age of the oldest row waiting to be published (0 if none).",
    ["outboxworker"],
)
outbox_dead = Gauge(
    "sagaz_outbox_dead_events", "Rows dead-lettered after maxAttempts.", ["outboxworker"]
)
outbox_published = Counter(
    "sagaz_outbox_published_total", "Rows published (acknowledged by Kafka).", ["outboxworker"]
)
outbox_failed = Counter(
    "sagaz_outbox_failed_total", "Failed attempts to publish a row.", ["outboxworker"]
)
outbox_dead_lettered = Counter(
    "sagaz_outbox_dead_total", "Rows this worker dead-lettered.", ["outboxworker"]
)
outbox_batch_duration = Histogram(
    "sagaz_outbox_batch_seconds",
    "From claiming a batch to committing its outcome.",
    ["outboxworker"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
outbox_partitions_owned = Gauge(
    "sagaz_outbox_partitions_owned", "Ordering partitions this replica holds.", ["outboxworker"]
)

# Scale-out (services/membership.py, services/intake.py): per replica; sum owned_sagas over
# replicas for the total, and compare members_seen across replicas (they should agree).
owned_sagas = Gauge(
    "sagaz_owned_sagas", "Sagas this replica owns and runs an executor for right now."
)
members_seen = Gauge(
    "sagaz_members_seen", "Live operator replicas (Leases) this replica sees, itself included."
)
handovers = Counter(
    "sagaz_handovers_total",
    "Sagas handed over because membership changed: taken (in) or given up (out).",
    ["direction"],
)

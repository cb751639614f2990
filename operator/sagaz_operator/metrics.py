"""Every Prometheus metric the operator and the outbox workers export, in one place.

All names carry the ``sagaz_`` prefix; labels are bounded (phases, results, step kinds,
OutboxWorker names, definition names capped by ``definition``) — never a saga's name or
uid, which would grow without limit. The chart's alerts
(``charts/sagaz-operator/files/alerts.yaml``) and dashboard
(``charts/sagaz-operator/dashboards/sagaz.json``) read these names: rename one, and
``tests/e2e/test_dashboard.py`` and the rules' unit tests say which panel or alert it broke.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import Counter, Gauge, Histogram

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

sagas_finished = Counter(
    "sagaz_sagas_finished_total",
    "Sagas that reached a terminal phase.",
    ["phase", "definition"],
)
sagas_active = Gauge("sagaz_sagas_active", "Sagas this operator process is executing.")
saga_duration = Histogram(
    "sagaz_saga_duration_seconds",
    "From start to terminal phase.",
    ["phase", "definition"],
    buckets=DURATION_BUCKETS,
)
step_attempts = Counter(
    "sagaz_step_attempts_total", "Step action attempts by result.", ["result", "definition"]
)
step_duration = Histogram(
    "sagaz_step_duration_seconds",
    "From a step's first dispatch to its success.",
    ["definition"],
    buckets=DURATION_BUCKETS,
)
compensations = Counter(
    "sagaz_compensations_total", "Compensation attempts by result.", ["result", "definition"]
)
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


# -- For the dashboard and the alerts ---------------------------------------------------------

#: How many distinct SagaDefinition names get a ``definition`` label value of their own in one
#: process; the names seen after that share ``OTHER_DEFINITION``. A cluster with hundreds of
#: definitions would otherwise multiply every per-definition series by hundreds.
MAX_DEFINITIONS = 50
OTHER_DEFINITION = "other"
#: The ``definition`` of a saga with an inline ``spec.definition``.
INLINE_DEFINITION = "inline"

_definitions: set[str] = set()
_definitions_lock = threading.Lock()


def definition(name: str) -> str:
    """The ``definition`` label value for a saga of the SagaDefinition ``name`` ("" when
    inline): the name itself for the first ``MAX_DEFINITIONS`` names this process meets,
    ``OTHER_DEFINITION`` for the rest."""
    if not name:
        return INLINE_DEFINITION
    with _definitions_lock:
        if name in _definitions:
            return name
        if len(_definitions) < MAX_DEFINITIONS:
            _definitions.add(name)
            return name
    return OTHER_DEFINITION


sagas_in_flight = Gauge(
    "sagaz_sagas_in_flight",
    "Unfinished sagas this operator process executes, by definition and phase (Pending, "
    "Running, Suspended, Compensating); finished ones are in sagaz_sagas_finished_total.",
    ["definition", "phase"],
)
sagas_started = Counter(
    "sagaz_sagas_started_total", "Sagas whose first step was started.", ["definition"]
)
sagas_by_phase = Gauge(
    "sagaz_sagas_by_phase",
    "Sagas in the cluster that this operator's journal holds, by phase, as of the last status "
    "resync (every SAGAZ_RESYNC_INTERVAL): every replica on one database reports the same.",
    ["phase"],
)

#: When each saga this process executes started (unix seconds), keyed by its reporter.
running_since: dict[int, float] = {}
saga_oldest_running = Gauge(
    "sagaz_saga_oldest_running_seconds",
    "Age of the oldest unfinished saga this operator process executes (0 if none).",
)
saga_oldest_running.set_function(
    lambda: max((time.time() - since for since in list(running_since.values())), default=0.0)
)

database_up = Gauge(
    "sagaz_database_up",
    "1 while this process reaches its PostgreSQL (the operator probes it every 10 s, a relay "
    "worker holds a connection), else 0.",
)

outbox_publish_latency = Histogram(
    "sagaz_outbox_publish_latency_seconds",
    "From a row's created_at to Kafka acknowledging it (the relay's end-to-end lag).",
    ["outboxworker"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
outbox_worker_healthy = Gauge(
    "sagaz_outbox_worker_healthy",
    "1 while this worker reaches its database and Kafka (its /healthz answers 200), else 0.",
    ["outboxworker"],
)
outboxworker_replicas = Gauge(
    "sagaz_outboxworker_replicas",
    "Worker pods of an OutboxWorker's Deployment, as the operator last reconciled it.",
    ["namespace", "outboxworker"],
)
outboxworker_ready_replicas = Gauge(
    "sagaz_outboxworker_ready_replicas",
    "Ready worker pods of an OutboxWorker, as the operator last reconciled it.",
    ["namespace", "outboxworker"],
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

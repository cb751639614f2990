"""What the outside world sees of a running saga: ``.status``, Kubernetes Events, metrics.

The status is a projection of the journal, so it may lag but never lead. It is coalesced:
``publish`` only records the latest state and a background task writes it at most once per
``interval`` — a burst of transitions costs one PATCH, not one each — except the final
state, which ``close`` writes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sagaz_operator import metrics
from sagaz_operator.adapters.kube import Kube, KubeError, ObjectRef
from sagaz_operator.domain import codec, conditions, projection, state
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Json
from sagaz_operator.services.executor import Clock

logger = logging.getLogger(__name__)

#: Journal events worth a Kubernetes Event, and whether it is a warning.
_EVENTS: dict[type[ev.Event], bool] = {
    ev.SagaStarted: False,
    ev.StepSucceeded: False,
    ev.StepFailed: True,
    ev.StepCancelled: True,
    ev.CompensationStarted: True,
    ev.CompensationSucceeded: False,
    ev.CompensationFailed: True,
    ev.SagaRejected: True,
    ev.SagaFinished: False,
    ev.RetryRequested: False,
    ev.RetryRefused: True,
}


class Reporter:
    def __init__(
        self,
        *,
        kube: Kube,
        ref: ObjectRef,
        definition_name: str,
        definition_generation: int,
        generation: Callable[[], int],
        clock: Clock,
        interval: float = 1.0,
    ) -> None:
        self._kube = kube
        self._ref = ref
        self._definition = (definition_name, definition_generation)
        self._generation = generation
        self._clock = clock
        self._interval = interval
        self._latest: state.SagaState | None = None
        self._written: dict[str, Json] | None = None
        self._dirty = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self._conditions: list[dict[str, Json]] = []
        self._database_ok = True

    # -- Observer ----------------------------------------------------------------------------

    def observe(self, event: ev.Event, current: state.SagaState) -> None:
        metrics.journal_events.labels(type(event).__name__).inc()
        _count(event, current)
        warning = _EVENTS.get(type(event))
        if warning is not None:
            if isinstance(event, ev.SagaFinished):
                warning = event.outcome is not ev.Outcome.SUCCEEDED
            self._post(codec.public_type(event), _describe(event), warning=warning)
        if isinstance(event, ev.RetryRequested | ev.RetryRefused):
            self._retry_condition(event)

    def _retry_condition(self, event: ev.RetryRequested | ev.RetryRefused) -> None:
        """``LeverRefused``: true with the reason while the last retry request was refused."""
        refused = isinstance(event, ev.RetryRefused)
        self._conditions = conditions.upsert(
            self._conditions,
            type="LeverRefused",
            status=refused,
            reason="RetryRefused" if refused else "RetryAccepted",
            message=_describe(event),
            generation=self._generation(),
            now=self._clock(),
        )
        self._dirty.set()

    def database(self, *, available: bool, message: str) -> None:
        """Show on the saga whether its progress is paused for the database."""
        self._conditions = conditions.upsert(
            self._conditions,
            type="DatabaseAvailable",
            status=available,
            reason="Reachable" if available else "Unreachable",
            message=message,
            generation=self._generation(),
            now=self._clock(),
        )
        if available != self._database_ok:
            self._database_ok = available
            self._post(
                "DatabaseAvailable" if available else "DatabaseUnavailable",
                message,
                warning=not available,
            )
        self._dirty.set()

    def publish(self, current: state.SagaState) -> None:
        self._latest = current
        self._dirty.set()
        if self._flusher is None:
            self._flusher = asyncio.create_task(
                self._flush_forever(), name=f"status {self._ref.name}"
            )

    async def close(self) -> None:
        """Write the last state now and wait for pending Events."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._write()
        if self._posts:
            await asyncio.gather(*self._posts, return_exceptions=True)

    # -- status ------------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._write()
            await asyncio.sleep(self._interval)

    async def _write(self) -> None:
        if self._latest is None:
            return
        name, generation = self._definition
        status = projection.status(
            self._latest,
            now=self._clock(),
            definition_name=name,
            definition_generation=generation,
        )
        status["observedGeneration"] = self._generation()
        if self._conditions:
            status["conditions"] = list(self._conditions)
        if status == self._written:
            return
        try:
            await self._kube.patch_status(self._ref, status)
            self._written = status
        except KubeError as error:  # the next publish or close tries again
            logger.warning("saga %s: status not written: %s", self._ref.name, error)
            self._dirty.set()

    # -- Events ------------------------------------------------------------------------------

    def _post(self, reason: str, message: str, *, warning: bool) -> None:
        task = asyncio.create_task(
            self._kube.post_event(self._ref, reason=reason, message=message, warning=warning)
        )
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)


def _describe(event: ev.Event) -> str:
    match event:
        case ev.SagaStarted():
            return "saga started"
        case ev.StepSucceeded(step=step, attempt=attempt):
            return f"step {step} succeeded (attempt {attempt})"
        case ev.StepFailed(step=step, attempt=attempt, error=error, retryable=retryable):
            again = "; will retry if attempts remain" if retryable else ""
            return f"step {step} attempt {attempt} failed: {error}{again}"
        case ev.StepCancelled(step=step):
            return f"step {step} cancelled: the saga is failing"
        case ev.CompensationStarted():
            return "compensating the steps that ran"
        case ev.CompensationSucceeded(step=step):
            return f"step {step} compensated"
        case ev.CompensationFailed(step=step, attempt=attempt, error=error):
            return f"compensation of step {step} attempt {attempt} failed: {error}"
        case ev.RetryRequested(request=request):
            return f"retry {request} accepted: trying again what failed, with a fresh budget"
        case ev.RetryRefused(request=request, message=message):
            return f"retry {request} refused: {message}"
        case ev.SagaRejected(message=message) | ev.SagaFinished(message=message):
            return message
    return type(event).__name__


def _count(event: ev.Event, current: state.SagaState) -> None:
    match event:
        case ev.StepSucceeded(step=step):
            metrics.step_attempts.labels("succeeded").inc()
            started = current.steps[step].started_at
            if started is not None:
                metrics.step_duration.observe((event.at - started).total_seconds())
        case ev.StepFailed():
            metrics.step_attempts.labels("failed").inc()
        case ev.CompensationSucceeded():
            metrics.compensations.labels("succeeded").inc()
        case ev.CompensationFailed():
            metrics.compensations.labels("failed").inc()
        case ev.SagaRejected():
            metrics.sagas_finished.labels(ev.Outcome.FAILED.value).inc()
        case ev.SagaFinished(outcome=outcome):
            metrics.sagas_finished.labels(outcome.value).inc()
            if current.started_at is not None:
                metrics.saga_duration.labels(outcome.value).observe(
                    (event.at - current.started_at).total_seconds()
                )

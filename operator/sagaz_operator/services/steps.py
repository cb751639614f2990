"""Runs one attempt of one step's action or compensation against its participant (HTTP or Job).

Templates are rendered here, at call time, from the saga's input and the outputs recorded so
far; a reference to a missing value fails the attempt for good, naming the path.
"""

from __future__ import annotations

from dataclasses import dataclass

from sagaz_operator.adapters.jobs import JobParticipants, JobRequest
from sagaz_operator.adapters.participants import HttpParticipants, ParticipantRequest
from sagaz_operator.domain import jobs, templates
from sagaz_operator.domain.model import Attempt, Call, HttpCall, JobCall, Json, Purpose, StepName
from sagaz_operator.domain.state import SagaState
from sagaz_operator.errors import PermanentParticipantError


@dataclass(frozen=True, kw_only=True)
class SagaContext:
    """Who a saga is, as participants and templates see it."""

    uid: str
    name: str
    namespace: str
    input: Json

    def attempt(self, *, step: StepName, purpose: Purpose, number: int) -> Attempt:
        return Attempt(
            namespace=self.namespace,
            saga_name=self.name,
            saga_uid=self.uid,
            step=step,
            purpose=purpose,
            number=number,
        )


class StepRunner:
    def __init__(self, *, http: HttpParticipants, jobs: JobParticipants) -> None:
        self._http = http
        self._jobs = jobs

    async def run(
        self,
        *,
        saga: SagaContext,
        state: SagaState,
        step: StepName,
        purpose: Purpose,
        attempt: int,
        traceparent: str,
    ) -> Json:
        """Run the attempt; ``traceparent`` names its span (``services.tracing``)."""
        call = _call(state, step, purpose)
        if call is None:  # pragma: no cover - the engine never dispatches a missing compensation
            raise PermanentParticipantError(f"step '{step}' has no {purpose}")
        this = saga.attempt(step=step, purpose=purpose, number=attempt)
        outputs = state.outputs()
        context = templates.TemplateContext(
            saga_name=saga.name,
            saga_uid=saga.uid,
            saga_namespace=saga.namespace,
            input=saga.input,
            outputs=outputs,
        )
        rendered = templates.render_call(call, context)
        if isinstance(rendered, JobCall):
            return await self._jobs.run(
                JobRequest(call=rendered, attempt=this, saga_input=saga.input, outputs=outputs)
            )
        default_body: Json = {
            "saga": {"name": saga.name, "namespace": saga.namespace, "uid": saga.uid},
            "step": step,
            "purpose": purpose,
            "input": saga.input,
            "outputs": outputs,
        }
        assert isinstance(rendered, HttpCall)
        return await self._http.call(
            ParticipantRequest(
                call=rendered,
                attempt=this,
                timeout_seconds=state.definition.step(step).timeout_seconds,
                traceparent=traceparent,
                default_body=default_body,
            )
        )

    async def stop(
        self,
        *,
        saga: SagaContext,
        state: SagaState,
        step: StepName,
        purpose: Purpose,
        attempt: int,
    ) -> None:
        """Clean up an attempt that was cut off (timeout, cancellation): delete its Job."""
        if isinstance(_call(state, step, purpose), JobCall):
            this = saga.attempt(step=step, purpose=purpose, number=attempt)
            await self._jobs.stop(namespace=saga.namespace, name=jobs.name(this))


def _call(state: SagaState, step: StepName, purpose: Purpose) -> Call | None:
    spec = state.definition.step(step)
    return spec.action if purpose == "action" else spec.compensation

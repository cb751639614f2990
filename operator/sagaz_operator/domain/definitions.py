"""From what users write (``api``) to what the engine runs (``model``), with every check.

``load(body)`` is the single gate: it parses a SagaDefinition spec, applies every default
(step settings inherit ``spec.defaults``), and refuses anything the engine could not run —
schema errors, graph problems (cycles, unknown dependencies, Pivot/Retriable ordering) and
templates that reference steps that are not guaranteed to have run. Its error names the
field or the steps at fault, for a condition message a human can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from sagaz_operator.api import definition as api
from sagaz_operator.domain import dag, templates
from sagaz_operator.domain.model import (
    Backoff,
    Call,
    Definition,
    FailureStrategy,
    HttpCall,
    JobCall,
    Json,
    RetryPolicy,
    SecretHeader,
    Step,
    StepKind,
    StepName,
)
from sagaz_operator.errors import DefinitionError

DEFAULT_STEP_TIMEOUT = 30
DEFAULT_SAGA_TIMEOUT = 600
DEFAULT_GRACE = 30
DEFAULT_RETRY = RetryPolicy(
    max_attempts=3, backoff=Backoff(initial_seconds=1, factor=2, max_seconds=60)
)
DEFAULT_COMPENSATION_RETRY = RetryPolicy(
    max_attempts=10, backoff=Backoff(initial_seconds=1, factor=2, max_seconds=300)
)


def parse(body: Mapping[str, Any], *, path: str = "spec") -> api.SagaDefinitionSpec:
    """Parse a SagaDefinition spec; the error names the offending field under ``path``."""
    try:
        return api.SagaDefinitionSpec.model_validate(body)
    except pydantic.ValidationError as error:
        raise DefinitionError(describe(error, path=path)) from error


def load(body: Mapping[str, Any], *, path: str = "spec") -> Definition:
    """Parse, complete and check a definition; raises DefinitionError naming the problem."""
    return build(parse(body, path=path))


def build(spec: api.SagaDefinitionSpec) -> Definition:
    defaults = spec.defaults or api.Defaults()
    step_retry = _retry(defaults.retry, DEFAULT_RETRY)
    steps = tuple(
        _step(s, timeout=defaults.timeout_seconds or DEFAULT_STEP_TIMEOUT, retry=step_retry)
        for s in spec.steps
    )
    found = dag.problems(steps) + templates.reference_problems(steps)
    if found:
        raise DefinitionError("; ".join(found))
    return Definition(
        steps=steps,
        failure_strategy=FailureStrategy(spec.failure_strategy.value),
        grace_period_seconds=(
            spec.grace_period_seconds if spec.grace_period_seconds is not None else DEFAULT_GRACE
        ),
        timeout_seconds=spec.timeout_seconds or DEFAULT_SAGA_TIMEOUT,
        compensation_retry=_retry(spec.compensation_retry, DEFAULT_COMPENSATION_RETRY),
    )


def describe(error: pydantic.ValidationError, *, path: str) -> str:
    """A pydantic error as ``spec.steps[1].name: <message>`` lines a human can act on."""
    messages = []
    for problem in error.errors(include_url=False):
        where = path
        for part in problem["loc"]:
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
        messages.append(f"{where}: {problem['msg']}")
    return "; ".join(messages)


def _step(spec: api.Step, *, timeout: int, retry: RetryPolicy) -> Step:
    return Step(
        name=StepName(spec.name),
        kind=StepKind(spec.kind.value),
        depends_on=tuple(StepName(d) for d in spec.depends_on),
        timeout_seconds=spec.timeout_seconds or timeout,
        retry=_retry(spec.retry, retry),
        action=_call(spec.action),
        compensation=_call(spec.compensation) if spec.compensation else None,
    )


def _retry(spec: api.Retry | None, inherited: RetryPolicy) -> RetryPolicy:
    if spec is None:
        return inherited
    backoff = spec.backoff or api.Backoff()
    base = inherited.backoff
    return RetryPolicy(
        max_attempts=spec.max_attempts or inherited.max_attempts,
        backoff=Backoff(
            initial_seconds=(
                backoff.initial_seconds
                if backoff.initial_seconds is not None
                else base.initial_seconds
            ),
            factor=backoff.factor if backoff.factor is not None else base.factor,
            max_seconds=backoff.max_seconds
            if backoff.max_seconds is not None
            else base.max_seconds,
        ),
    )


def _call(spec: api.Call) -> Call:
    if spec.http is not None:
        http = spec.http
        body: Json = http.body
        return HttpCall(
            url=http.url,
            method=http.method.value,
            headers=dict(http.headers or {}),
            headers_from=tuple(
                SecretHeader(
                    name=h.name, secret_name=h.secret_key_ref.name, secret_key=h.secret_key_ref.key
                )
                for h in http.headers_from or ()
            ),
            body=body,
            has_body="body" in http.model_fields_set,
        )
    assert spec.job is not None  # the model guarantees exactly one
    job = spec.job
    return JobCall(
        template=dict(job.template),
        backoff_limit=job.backoff_limit,
        active_deadline_seconds=job.active_deadline_seconds,
        ttl_seconds_after_finished=job.ttl_seconds_after_finished,
    )

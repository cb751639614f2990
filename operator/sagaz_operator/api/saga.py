"""The Saga resource: one run of a saga definition with its input, and its observable progress.

A Saga names a SagaDefinition or embeds one; either way the operator snapshots the resolved
definition when the saga starts, so ``status.definition`` records which one (and which
generation) this run uses. Parse with ``SagaSpec.model_validate(body["spec"])`` and
``SagaStatus.model_validate(body.get("status") or {})``.

The status is a bounded projection of the journal in PostgreSQL, and it is declared field by
field: the API server prunes undeclared fields, so a fully declared schema is what keeps the
operator's own status patches from silently disappearing (kopf#574). Only a step's ``output``
is free-form JSON. ``duration`` and ``currentStep`` exist for the printer columns, which can
only show stored fields, not compute them.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Self

from pydantic import ConfigDict, Field, JsonValue, model_validator

from sagaz_operator.api.definition import (
    CONDITIONS_LIST,
    MAX_STEPS,
    ApiModel,
    Condition,
    SagaDefinitionSpec,
    cel,
    validations,
)


class SagaPhase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    COMPENSATING = "Compensating"
    SUCCEEDED = "Succeeded"
    COMPENSATED = "Compensated"
    COMPENSATION_FAILED = "CompensationFailed"
    FAILED = "Failed"


class StepPhase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    COMPENSATING = "Compensating"
    COMPENSATED = "Compensated"
    COMPENSATION_FAILED = "CompensationFailed"


class DefinitionRef(ApiModel):
    """A SagaDefinition in the Saga's namespace."""

    name: str = Field(min_length=1, max_length=253, description="The SagaDefinition's name.")


class SagaSpec(ApiModel):
    """One saga run: the definition to follow, its input, and the controls to pause or stop it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.definitionRef) != has(self.definition)",
                "exactly one of spec.definitionRef or spec.definition must be set",
            )
        )
    )

    definition_ref: DefinitionRef | None = Field(
        None, description="The SagaDefinition to run. Exclusive with definition."
    )
    definition: SagaDefinitionSpec | None = Field(
        None,
        description="An inline definition (a SagaDefinition spec). Exclusive with definitionRef.",
    )
    input: dict[str, JsonValue] | None = Field(
        None,
        description="The saga's input, available to steps as ${input.<path>}; validated against"
        " the definition's inputSchema.",
    )
    suspend: bool = Field(
        False, description="True: start no new steps; steps in flight finish. False: resume."
    )
    abort: bool = Field(
        False, description="True: stop and compensate every step that ran (reason Aborted)."
    )
    retry: int = Field(
        0,
        ge=0,
        description="Raise by one to retry a saga that stopped short: a CompensationFailed saga"
        " retries its failed compensations with a fresh retry budget; a Failed saga whose"
        " Retriable steps ran out of time retries them under a new deadline. Any other phase"
        " refuses it (condition LeverRefused, reason RetryRefused). Each value is acted on once;"
        " status.observedRetry acknowledges it.",
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Seconds after which a finished Saga is deleted. Omitted: kept."
    )

    @model_validator(mode="after")
    def _exactly_one_definition(self) -> Self:
        if (self.definition_ref is None) == (self.definition is None):
            raise ValueError("exactly one of spec.definitionRef or spec.definition must be set")
        return self


class DefinitionSnapshot(ApiModel):
    """Which definition this run follows, as snapshotted when it started."""

    name: str | None = Field(None, description="The SagaDefinition's name; empty if inline.")
    generation: int | None = Field(
        None, ge=0, description="The SagaDefinition's metadata.generation that was snapshotted."
    )


class StepStatus(ApiModel):
    """The progress of one step."""

    name: str = Field(description="The step's name.")
    phase: StepPhase = Field(StepPhase.PENDING, description="Where the step is in its lifecycle.")
    attempts: int = Field(0, ge=0, description="Attempts of the action so far.")
    compensation_attempts: int = Field(0, ge=0, description="Attempts of the compensation so far.")
    started_at: datetime | None = Field(None, description="When the first attempt started.")
    finished_at: datetime | None = Field(None, description="When the step reached its last phase.")
    error: str | None = Field(None, description="The last error, if any.")
    output: JsonValue = Field(
        None, description="The step's output (JSON), if small enough to show; see outputTruncated."
    )
    output_truncated: bool = Field(
        False, description="True if the output was too large for the status and is omitted here."
    )


class SagaStatus(ApiModel):
    """The saga's progress, written by the operator; PostgreSQL holds the full journal."""

    phase: SagaPhase | None = Field(None, description="Where the saga is in its lifecycle.")
    started_at: datetime | None = Field(None, description="When the first step started.")
    finished_at: datetime | None = Field(None, description="When the saga reached its last phase.")
    duration: str | None = Field(
        None, description="How long the saga ran (or has been running), e.g. 12s or 3m4s."
    )
    message: str | None = Field(None, description="A human-readable summary of the phase.")
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the status describes."
    )
    conditions: tuple[Condition, ...] | None = Field(
        None, json_schema_extra=CONDITIONS_LIST, description="The saga's conditions."
    )
    definition: DefinitionSnapshot | None = Field(
        None, description="The definition this run follows."
    )
    progress: str | None = Field(None, description="Finished steps out of all steps, e.g. 3/5.")
    current_step: str | None = Field(
        None, description="The step running (or compensating) now; several are comma-separated."
    )
    observed_retry: int | None = Field(
        None, ge=0, description="The last spec.retry acted on (applied or refused)."
    )
    steps: tuple[StepStatus, ...] | None = Field(
        None,
        max_length=MAX_STEPS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="The progress of every step.",
    )

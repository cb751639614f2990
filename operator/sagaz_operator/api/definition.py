"""The SagaDefinition resource: what users write to declare a saga's steps, as pydantic models.

These models are the API's single source of truth. ``crdgen`` turns their JSON schema into the
CRD's OpenAPI schema, so every ``description`` here is what ``kubectl explain`` shows, and every
``x-kubernetes-validations`` rule (attached with ``cel``) is enforced by the API server at
admission. Each CEL rule is mirrored by a pydantic validator, so a body the API server admits is
exactly a body these models parse: handlers never meet an object they cannot read.

Fields are snake_case in Python and camelCase on the wire; parse a body with
``SagaDefinitionSpec.model_validate(body["spec"])`` and write status with
``status.model_dump(mode="json", by_alias=True, exclude_none=True)``.

Anything whose default depends on another field (a step's retry policy inherits
``spec.defaults``) is optional here, with ``None`` meaning "inherit": ``domain.definitions``
applies the inheritance, so the API server never stores a default the user did not choose.
Shared pieces of the API (``ApiModel``, ``Condition``, ``SecretKeySelector``) live here too,
since a Saga embeds a whole definition and everything else builds on it.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

GROUP = "sagaz.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: The longest deadline anything may have: a week.
MAX_SECONDS = 7 * 86400
#: Kubernetes object names used as step names, so they can appear in Job names and labels.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_STEPS = 100
#: A Kubernetes object name (a DNS subdomain), e.g. a Secret's. Never a path: no ``/``, no ``..``.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: The label a Secret must carry (value ``"true"``) before the operator sends one of its keys
#: to a participant (``headersFrom``): the Secret's owner opts in, not the saga's author.
PARTICIPANT_CREDENTIALS_LABEL = f"{GROUP}/participant-credentials"

#: A step's name as written in ``name`` and ``dependsOn``.
StepName = Annotated[
    str, Field(max_length=63, pattern=DNS_LABEL, description="A step name (a DNS label).")
]


def cel(rule: str, message: str, *, field_path: str | None = None) -> dict[str, JsonValue]:
    """One ``x-kubernetes-validations`` entry; ``field_path`` points the error at a child."""
    validation: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path is not None:
        validation["fieldPath"] = field_path
    return validation


def validations(*rules: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """``json_schema_extra`` carrying CEL rules, for a model's config or a ``Field``."""
    return {"x-kubernetes-validations": list(rules)}


class ApiModel(BaseModel):
    """Base of every API model: camelCase aliases, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the object's state, as in metav1.Condition."""

    type: str = Field(description="The aspect this condition describes, e.g. Ready.")
    status: ConditionStatus = Field(
        description="Whether the condition holds: True, False or Unknown."
    )
    reason: str | None = Field(
        None, description="A machine-readable PascalCase reason for the last transition."
    )
    message: str | None = Field(None, description="A human-readable explanation of the status.")
    last_transition_time: datetime | None = Field(None, description="When the status last changed.")
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation this condition was computed from."
    )


#: ``json_schema_extra`` of a ``conditions`` list: one entry per type, merged by type.
CONDITIONS_LIST: dict[str, JsonValue] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class SecretKeySelector(ApiModel):
    """A key of a Secret in the object's namespace; the value is read when needed, never copied.

    There is no namespace field, and the name must be an object name (not a path), so an object
    can only ever name Secrets of its own namespace.
    """

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="The name of the Secret, in the object's own namespace.",
    )
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="The key within the Secret's data.",
    )


class FailureStrategy(enum.StrEnum):
    FAIL_FAST = "FailFast"
    WAIT_ALL = "WaitAll"
    FAIL_FAST_WITH_GRACE = "FailFastWithGrace"


class StepKind(enum.StrEnum):
    COMPENSATABLE = "Compensatable"
    PIVOT = "Pivot"
    RETRIABLE = "Retriable"


class HttpMethod(enum.StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class Backoff(ApiModel):
    """Exponential backoff: initialSeconds * factor^(attempt-1), capped at maxSeconds, jittered."""

    initial_seconds: float | None = Field(
        None, ge=0, le=MAX_SECONDS, description="Delay before the second attempt. Default 1."
    )
    factor: float | None = Field(
        None,
        ge=1,
        le=100,
        description="Multiplier applied to the delay after each attempt. Default 2.",
    )
    max_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_SECONDS,
        description="Upper bound of any delay. Default 60 (300 for compensations).",
    )


class Retry(ApiModel):
    """How often a call is tried and how long to wait in between. Omitted fields are inherited."""

    max_attempts: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Attempts in total, including the first. Default 3 (10 for compensations).",
    )
    backoff: Backoff | None = Field(None, description="Delays between attempts.")


class Defaults(ApiModel):
    """Settings every step inherits unless it sets its own."""

    timeout_seconds: int | None = Field(
        None, ge=1, le=MAX_SECONDS, description="Deadline of one attempt of a step. Default 30."
    )
    retry: Retry | None = Field(None, description="Retry policy of a step's action.")


class HeaderFromSecret(ApiModel):
    """A request header whose value is read from a Secret at call time.

    The Secret must carry the label ``sagaz.io/participant-credentials: "true"``, or the step
    fails without sending anything.
    """

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        description="The header name, e.g. Authorization.",
    )
    secret_key_ref: SecretKeySelector = Field(description="The Secret key holding the value.")


class HttpCall(ApiModel):
    """An HTTP request to a participant service; a 2xx JSON response body is the step's output."""

    url: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^https?://",
        description="The http:// or https:// URL to call. Redirects are not followed.",
    )
    method: HttpMethod = Field(HttpMethod.POST, description="The HTTP method.")
    headers: dict[str, str] | None = Field(None, description="Literal request headers.")
    headers_from: tuple[HeaderFromSecret, ...] | None = Field(
        None,
        max_length=32,
        description=(
            "Request headers whose values come from Secrets of the saga's namespace; each"
            ' Secret must be labelled sagaz.io/participant-credentials: "true".'
        ),
    )
    body: JsonValue = Field(
        None,
        description=(
            "The JSON request body; ${input.x}, ${steps.<name>.output.x} and ${saga.name|uid|"
            "namespace} templates are substituted. Omitted: the saga, the step, the input and"
            " the outputs so far."
        ),
    )


class JobCall(ApiModel):
    """A Kubernetes Job that runs the step; its termination message (JSON) is the output."""

    template: dict[str, JsonValue] = Field(
        description="The Job's pod template (a PodTemplateSpec: metadata and spec)."
    )
    backoff_limit: int = Field(0, ge=0, le=100, description="Pod retries within one Job.")
    active_deadline_seconds: int | None = Field(
        None, ge=1, le=MAX_SECONDS, description="Deadline of the Job once started."
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Seconds after which a finished Job is deleted."
    )


class Call(ApiModel):
    """What a step (or its compensation) does: exactly one of http or job."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("has(self.http) != has(self.job)", "exactly one of http or job must be set")
        )
    )

    http: HttpCall | None = Field(None, description="Call an HTTP endpoint.")
    job: JobCall | None = Field(None, description="Run a Kubernetes Job.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.http is None) == (self.job is None):
            raise ValueError("exactly one of http or job must be set")
        return self


class Step(ApiModel):
    """One local transaction of the saga: an action and, usually, a compensation undoing it."""

    name: StepName = Field(description="The step's name (a DNS label), unique.")
    kind: StepKind = Field(
        StepKind.COMPENSATABLE,
        description=(
            "Compensatable: undone by its compensation on failure. Pivot: the point of no"
            " return. Retriable: after the pivot, retried until it succeeds, never compensated."
        ),
    )
    depends_on: tuple[StepName, ...] = Field(
        default_factory=tuple,
        max_length=MAX_STEPS,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Steps that must succeed before this one starts.",
    )
    timeout_seconds: int | None = Field(
        None,
        ge=1,
        le=MAX_SECONDS,
        description="Deadline of one attempt. Default spec.defaults.timeoutSeconds.",
    )
    retry: Retry | None = Field(
        None, description="Retry policy of the action. Default spec.defaults.retry."
    )
    action: Call = Field(description="What the step does.")
    compensation: Call | None = Field(
        None, description="What undoes the action. Omitted: nothing to undo."
    )


class SagaDefinitionSpec(ApiModel):
    """A reusable saga: its steps, their dependencies, and what happens when one fails."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.gracePeriodSeconds) || self.failureStrategy == 'FailFastWithGrace'",
                "gracePeriodSeconds is only allowed with failureStrategy FailFastWithGrace",
                field_path=".gracePeriodSeconds",
            )
        )
    )

    failure_strategy: FailureStrategy = Field(
        FailureStrategy.FAIL_FAST,
        description=(
            "What happens to in-flight steps when one fails. FailFast: cancel them. WaitAll:"
            " let them finish. FailFastWithGrace: let them finish within gracePeriodSeconds."
        ),
    )
    grace_period_seconds: int | None = Field(
        None,
        ge=0,
        le=MAX_SECONDS,
        description="How long in-flight steps may finish (FailFastWithGrace only). Default 30.",
    )
    timeout_seconds: int | None = Field(
        None,
        ge=1,
        le=MAX_SECONDS,
        description="Deadline of the whole saga; when exceeded it compensates. Default 600.",
    )
    defaults: Defaults | None = Field(None, description="Settings inherited by every step.")
    compensation_retry: Retry | None = Field(
        None, description="Retry policy of compensations. Default 10 attempts, backoff up to 300s."
    )
    input_schema: dict[str, JsonValue] | None = Field(
        None, description="A JSON Schema that every Saga's spec.input must satisfy."
    )
    steps: tuple[Step, ...] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        json_schema_extra=validations(
            cel("self.all(s, self.exists_one(t, t.name == s.name))", "step names must be unique")
        ),
        description="The steps; a directed acyclic graph through their dependsOn.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        if (
            self.grace_period_seconds is not None
            and self.failure_strategy is not FailureStrategy.FAIL_FAST_WITH_GRACE
        ):
            raise ValueError(
                "gracePeriodSeconds is only allowed with failureStrategy FailFastWithGrace"
            )
        return self


class SagaDefinitionStatus(ApiModel):
    """Whether the definition is usable; written by the operator."""

    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the status describes."
    )
    conditions: tuple[Condition, ...] | None = Field(
        None,
        json_schema_extra=CONDITIONS_LIST,
        description="Ready is True when the definition is valid, else False naming the problem.",
    )
    step_count: int | None = Field(None, ge=0, description="The number of steps.")

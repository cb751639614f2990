"""What a saga definition is, once parsed: plain frozen values the engine reasons about.

The CRD models in ``api/`` describe what users write; ``domain.definitions`` turns them into
these types with every default applied, so the engine never has to know about omitted fields.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NewType, TypeAlias

if TYPE_CHECKING:
    from sagaz_operator.domain.dag import Graph

StepName = NewType("StepName", str)
SagaUid = NewType("SagaUid", str)

#: A JSON value as decoded by ``json.loads``.
Json: TypeAlias = "bool | int | float | str | list[Json] | dict[str, Json] | None"


class StepKind(enum.StrEnum):
    """Saga theory's three kinds of local transaction."""

    COMPENSATABLE = "Compensatable"  # can be undone by its compensation
    PIVOT = "Pivot"  # the point of no return: once it succeeds the saga only goes forward
    RETRIABLE = "Retriable"  # after the pivot; retried until success, never compensated


class FailureStrategy(enum.StrEnum):
    """What happens to in-flight steps when one step fails."""

    FAIL_FAST = "FailFast"  # cancel in-flight steps at once
    WAIT_ALL = "WaitAll"  # start nothing new, let in-flight steps finish
    FAIL_FAST_WITH_GRACE = "FailFastWithGrace"  # as WaitAll, but only for the grace period


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Exponential backoff: ``initial * factor**(attempt-1)``, capped at ``max``, with jitter."""

    initial_seconds: float = 1.0
    factor: float = 2.0
    max_seconds: float = 60.0


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often one step (or its compensation) is tried, and how long to wait in between."""

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True, kw_only=True)
class SecretHeader:
    """A request header whose value is read from a Secret at call time, never stored."""

    name: str
    secret_name: str
    secret_key: str


@dataclass(frozen=True, kw_only=True)
class HttpCall:
    """An HTTP request to a participant; ``body`` may contain ``${...}`` templates."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    headers_from: tuple[SecretHeader, ...] = ()
    body: Json = None  # None: the default body (saga, step, input, outputs)
    has_body: bool = False  # distinguishes "no body given" from an explicit JSON null


@dataclass(frozen=True, kw_only=True)
class JobCall:
    """A Kubernetes Job run as a participant; ``template`` is a PodTemplateSpec body."""

    template: Mapping[str, Json]
    backoff_limit: int = 0
    active_deadline_seconds: int | None = None
    ttl_seconds_after_finished: int | None = None


Call: TypeAlias = HttpCall | JobCall

#: What an attempt runs: a step's action, or its compensation.
Purpose: TypeAlias = Literal["action", "compensation"]


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One attempt of one step's action or compensation, as participants see it."""

    namespace: str
    saga_name: str
    saga_uid: str
    step: str
    purpose: Purpose
    number: int  # 1-based

    @property
    def idempotency_key(self) -> str:
        """The same on every attempt and after every restart (DESIGN.md §3)."""
        return f"{self.saga_uid}/{self.step}/{self.purpose}"


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of a saga with every default already applied."""

    name: StepName
    kind: StepKind = StepKind.COMPENSATABLE
    depends_on: tuple[StepName, ...] = ()
    timeout_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    action: Call
    compensation: Call | None = None


@dataclass(frozen=True, kw_only=True)
class Definition:
    """A complete, validated saga definition (see ``domain.dag.problems``)."""

    steps: tuple[Step, ...]
    failure_strategy: FailureStrategy = FailureStrategy.FAIL_FAST
    grace_period_seconds: float = 30.0
    timeout_seconds: float = 600.0
    compensation_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            max_attempts=10, backoff=Backoff(initial_seconds=1, factor=2, max_seconds=300)
        )
    )

    def step(self, name: StepName) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @functools.cached_property
    def graph(self) -> Graph:
        """The steps' dependency graph, built once per definition: the engine asks for it on
        every transition, and building it (checking the structure, ordering, closures) was a
        twentieth of the operator's CPU."""
        from sagaz_operator.domain.dag import Graph  # dag is built on this module's Step

        return Graph(self.steps)

"""Every error the operator raises on purpose, in one tree.

    SagazError
    ├── ConfigError                 the operator's own settings are unusable; it refuses to start
    ├── DefinitionError             a SagaDefinition (or inline definition) is invalid
    ├── TemplateError               a ``${...}`` reference cannot be resolved
    ├── KubeError                   a Kubernetes API call failed (``adapters.kube``: ApiError,
    │                               ApiUnreachableError); ``retryable`` says if repeating helps
    ├── SecretNotOptedInError       a Secret lacks the label that lets the operator use it
    ├── ParticipantError            a step's participant call did not succeed
    │   ├── RetryableParticipantError     5xx, 408, 425, 429, timeouts, connection errors
    │   └── PermanentParticipantError     other 4xx, redirects, invalid responses, refused targets
    └── StoreError                  the saga store (the journal) did not take a read or a write
        ├── StoreUnavailableError         it cannot be reached now; the caller waits and retries
        ├── StoreConflictError            another writer moved the saga's journal on first
        └── UnstorableError               it refuses a value (a NUL, a lone surrogate...)

Domain and adapter code raise these. The executor turns a ``ParticipantError`` into the
attempt's outcome (retried or not by the step's own policy), so Kopf never sees one; a
``ConfigError`` stops the command line with exit code 2.

A ``ParticipantError`` also says whether the call may have taken effect anyway
(``outcome_unknown``: the request was sent but no answer came back, e.g. a read timeout). Such a
step is compensated like a succeeded one if the saga rolls back (DESIGN.md section 3).

The ``StoreError`` classes are the errors of the services' ``SagaStore`` port: the PostgreSQL
adapter translates its driver's errors into them, so no service knows the driver. An
``UnstorableError`` should never be seen: ``domain.storable`` finds such values first; if one
slips through, the saga reports ``InternalError`` instead of retrying the same write for ever.
"""

from __future__ import annotations


class SagazError(Exception):
    """Base of all errors raised on purpose by the operator."""

    retryable: bool = False


class ConfigError(SagazError):
    """The operator's configuration is unusable."""


class DefinitionError(SagazError):
    """A saga definition is invalid; the message names the problem for a human."""


class TemplateError(SagazError):
    """A template refers to a value that does not exist; the message names its path."""


class SecretNotOptedInError(SagazError):
    """A Secret exists but its owner did not label it for this use; the message says how.

    Not retryable by itself: someone must add the label (a later attempt then succeeds).
    """


class ParticipantError(SagazError):
    """A participant call failed."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        self.outcome_unknown = outcome_unknown  # sent, but whether it took effect is unknown


class RetryableParticipantError(ParticipantError):
    """A failure that may succeed if the call is repeated."""

    retryable = True


class PermanentParticipantError(ParticipantError):
    """A failure that will not go away by repeating the call."""


class StoreError(SagazError):
    """The saga store did not take a read or a write."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now; try again later."""

    retryable = True


class StoreConflictError(StoreError):
    """Someone else appended to this saga's journal: this writer's view is stale."""


class UnstorableError(StoreError):
    """The store refuses a value in the statement (the same write would fail again)."""

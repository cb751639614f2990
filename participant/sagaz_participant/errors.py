"""The SDK's errors, one tree::

    ParticipantError
    ├── InvalidKeyError        an Idempotency-Key that is empty, too long or not printable
    ├── NoTransactionError     ``connection()`` called outside an idempotent request
    └── ConfigurationError     a table name that is not a plain SQL identifier, a bad limit

Errors of the database itself (``asyncpg``'s) are not wrapped: they mean nothing was stored
and the caller should answer "try again" (the operator retries 5xx).
"""

from __future__ import annotations


class ParticipantError(Exception):
    """Base of every error this package raises."""


class InvalidKeyError(ParticipantError, ValueError):
    """The Idempotency-Key cannot identify a request; the adapters answer 400."""


class NoTransactionError(ParticipantError, LookupError):
    """There is no idempotent request (hence no transaction) in this context."""


class ConfigurationError(ParticipantError, ValueError):
    """The SDK was set up with a value it cannot use."""

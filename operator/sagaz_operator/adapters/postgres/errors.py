"""Telling "the database is away for now" apart from real errors.

Connection loss, a server shutting down or restarting, and timeouts are transient: the
operator pauses and tries again. Everything else (a constraint violation, a bad query) is a
bug or a conflict and is raised as is.
"""

from __future__ import annotations

import asyncpg

from sagaz_operator.errors import StoreUnavailableError


class DatabaseError(Exception):
    """A database call failed: the database is away, or it refused the statement."""


class DatabaseUnavailableError(DatabaseError, StoreUnavailableError):
    """The database cannot be reached right now; try again later.

    It is the store port's ``StoreUnavailableError`` too, so services catch the port's error.
    """


def unstorable() -> tuple[type[BaseException], ...]:
    """What PostgreSQL (or asyncpg) raises for a value it cannot take: the same write fails again.

    Class 22 covers ``\\u0000`` in jsonb, NUL in text, a lone surrogate or NaN in jsonb and a
    str asyncpg cannot encode; class 54 nesting past ``max_stack_depth`` and size limits.
    """
    return (asyncpg.DataError, asyncpg.ProgramLimitExceededError)


def unavailable() -> tuple[type[BaseException], ...]:
    return (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
        asyncpg.CrashShutdownError,
        asyncpg.TooManyConnectionsError,
    )

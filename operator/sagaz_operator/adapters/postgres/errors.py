"""Telling "the database is away for now" apart from real errors.

Connection loss, a server shutting down or restarting, and timeouts are transient: the
operator pauses and tries again. Everything else (a constraint violation, a bad query) is a
bug or a conflict and is raised as is.
"""

from __future__ import annotations

import asyncpg


class DatabaseError(Exception):
    """A database call failed: the database is away, or it refused the statement."""


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached right now; try again later."""


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

"""Durable idempotency: each Idempotency-Key is handled once, its answer kept in PostgreSQL.

``Idempotency.run(key, handler)`` is the whole mechanism; the ASGI and aiohttp adapters only
translate HTTP to it. In one transaction it

1. takes a transaction-scoped advisory lock on the key's scope (``keys.py``): a concurrent
   duplicate — the operator retrying after a timeout while the first attempt still runs —
   waits here until the first commits, then finds its answer;
2. returns the stored answer if there is one (the handler does not run);
3. for a compensation whose action never arrived (or was refused), records the action as
   *cancelled* and answers success without running the handler: there is nothing to undo,
   and the late action, when it comes, finds the cancellation and is refused with 409;
4. otherwise runs the handler on the transaction's connection, so its writes and the stored
   answer commit together. A crash before the commit applies nothing and stores nothing; the
   retry runs the handler afresh. A non-final answer (5xx, 408, 425, 429) rolls back too.
"""

from __future__ import annotations

import contextvars
import enum
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from sagaz_participant import keys, schema
from sagaz_participant.answers import Answer
from sagaz_participant.errors import ConfigurationError, NoTransactionError
from sagaz_participant.schema import Connection

Handler = Callable[[Connection], Awaitable[Answer]]

_current: contextvars.ContextVar[Connection] = contextvars.ContextVar("sagaz_connection")


class Source(enum.Enum):
    """Where an answer came from."""

    HANDLER = "handler"  # the handler ran now; stored with its writes if the answer is final
    STORED = "stored"  # a repeat: the first answer, the handler did not run
    CANCELLED = "cancelled"  # an action whose compensation came first: refused, not run
    NOTHING_TO_UNDO = "nothing-to-undo"  # a compensation of an action never applied: not run


@dataclass(frozen=True, kw_only=True)
class Result:
    answer: Answer
    source: Source
    stored: bool  # the answer is (now or already) in the table

    @property
    def replayed(self) -> bool:
        return self.source in {Source.STORED, Source.CANCELLED}


def connection() -> Connection:
    """The connection of the idempotent request being handled, inside its transaction.

    Write through it, and the writes commit with the answer (or not at all).
    """
    try:
        return _current.get()
    except LookupError:
        raise NoTransactionError(
            "connection() is only available inside an idempotent request"
        ) from None


class _Discard(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Leaves the transaction, rolling it back, with an answer that must not be stored."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer


class Idempotency:
    """Handles requests once per key. Bind it to a pool (now or at start-up), ``install`` once."""

    def __init__(self, pool: asyncpg.Pool | None = None, *, table: str = "sagaz_idempotency"):
        self._pool = pool
        self.table = schema.identifier(table)
        self._select = (
            f"SELECT disposition, status, headers::text, body FROM {table} WHERE key = $1"
        )
        self._insert = (
            f"INSERT INTO {table} (key, disposition, status, headers, body)"
            " VALUES ($1, $2, $3, $4::jsonb, $5)"
        )

    def bind(self, pool: asyncpg.Pool) -> None:
        """Use ``pool`` (for frameworks whose middleware is built before the pool exists)."""
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ConfigurationError("Idempotency has no connection pool: call bind(pool) first")
        return self._pool

    async def install(self) -> None:
        await schema.install(self.pool, schema.IDEMPOTENCY, self.table)

    async def run(self, key: str, handler: Handler) -> Result:
        """Handle the request with ``key`` once; see the module docstring for the steps."""
        parsed = keys.parse(key)
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    return await self._run(conn, parsed, handler)
            except _Discard as discarded:
                return Result(answer=discarded.answer, source=Source.HANDLER, stored=False)

    async def _run(self, conn: Connection, key: keys.Key, handler: Handler) -> Result:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", self.table, key.scope
        )
        stored = await self._stored(conn, key.value)
        if stored is not None:
            disposition, answer = stored
            source = Source.CANCELLED if disposition == "cancelled" else Source.STORED
            return Result(answer=answer, source=source, stored=True)
        if key.purpose is keys.Purpose.COMPENSATION:
            action = await self._stored(conn, key.action)
            if action is None:
                await self._store(conn, key.action, _cancellation(key), disposition="cancelled")
            if action is None or not action[1].succeeded:
                answer = _nothing_to_undo(key, cancelled=action is None)
                await self._store(conn, key.value, answer)
                return Result(answer=answer, source=Source.NOTHING_TO_UNDO, stored=True)
        token = _current.set(conn)
        try:
            answer = await handler(conn)
        finally:
            _current.reset(token)
        if not answer.final:
            raise _Discard(answer)
        await self._store(conn, key.value, answer)
        return Result(answer=answer, source=Source.HANDLER, stored=True)

    async def _stored(self, conn: Connection, key: str) -> tuple[str, Answer] | None:
        row = await conn.fetchrow(self._select, key)
        if row is None:
            return None
        headers = tuple((str(k), str(v)) for k, v in json.loads(row["headers"]))
        answer = Answer(status=row["status"], body=bytes(row["body"]), headers=headers)
        return str(row["disposition"]), answer

    async def _store(
        self, conn: Connection, key: str, answer: Answer, *, disposition: str = "answered"
    ) -> None:
        headers = json.dumps([list(h) for h in answer.headers])
        await conn.execute(self._insert, key, disposition, answer.status, headers, answer.body)


def _cancellation(key: keys.Key) -> Answer:
    return Answer.json(
        {
            "error": "cancelled",
            "message": f"the compensation of {key.scope} arrived before this action: "
            "the action is cancelled and will not be applied",
        },
        status=409,
    )


def _nothing_to_undo(key: keys.Key, *, cancelled: bool) -> Answer:
    why = "never arrived: it is cancelled" if cancelled else "was refused: nothing was applied"
    return Answer.json({"compensated": False, "message": f"the action of {key.scope} {why}"})

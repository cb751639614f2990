"""The outbox relay's decisions: where an event belongs, what its record says, what to do next.

**Partition of an event.** Ordering holds per aggregate, so every event of one aggregate must be
published by one worker at a time. Events are sharded into ``partitions`` by a hash of their
``aggregate_id``, and a worker owns whole partitions (DESIGN.md §4.3). The hash is specified
exactly, so that PostgreSQL (which filters a worker's rows) and any other service or language
compute the same number::

    partition = uint32_be(sha256(utf8(aggregate_id))[0:4]) mod partitions

i.e. the first 4 bytes of the SHA-256 digest of the key's UTF-8 bytes, read as an unsigned
big-endian 32-bit integer, modulo the partition count. In SQL (any PostgreSQL >= 11; sha256 is
also available where FIPS mode disables md5)::

    ('x' || left(encode(sha256(convert_to(aggregate_id, 'UTF8')), 'hex'), 8))::bit(32)::bigint
        % partitions

**Ownership.** A worker keeps at most ``ceil(partitions / live workers)`` partitions, so a new
replica finds some to take: the others release their excess, it picks them up
(``plan_ownership``). The order partitions are tried in is random (passed in), so workers that
start together do not all go for partition 0 first.

**Failures and order.** Rows of a batch are settled in order (``settle``). Once a row of an
aggregate is not delivered — it failed, or Kafka did not answer in time — the later rows of that
aggregate in the batch stay pending even if Kafka took them, because publishing them now would
put them before their predecessor. A failed row counts an attempt; after ``max_attempts`` it
becomes ``dead``, which unblocks its aggregate: a dead row is never published, so the events
after it no longer wait for it. A row whose delivery is unknown (Kafka unavailable) does not
count an attempt: an outage is not the event's fault.

**CloudEvents.** Each record carries the Kafka protocol binding's binary-mode headers
(``ce_id`` = the row id, so consumers drop duplicates; ``ce_type``, ``ce_source``,
``ce_specversion``, ``ce_time``) and ``content-type: application/json``; the row's own headers
follow, but never override those.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from sagaz_operator.domain.model import Json

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
# Header names the CloudEvents Kafka binding reserves; a row's own headers cannot set them.
_RESERVED_PREFIX = "ce_"
_RESERVED = frozenset({"content-type"})
# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def partition_of(aggregate_id: str, partitions: int) -> int:
    """The partition of ``aggregate_id`` among ``partitions`` (see the module docstring)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    digest = hashlib.sha256(aggregate_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % partitions


def valid_topic(name: str) -> bool:
    """Whether Kafka accepts ``name`` as a topic (a bad one would stall the producer)."""
    return _TOPIC.fullmatch(name) is not None and name not in {".", ".."}


# ---------------------------------------------------------------------------------------------
# The record


def cloudevent_headers(
    *, event_id: str, event_type: str, source: str, time: datetime
) -> list[tuple[str, bytes]]:
    """CloudEvents Kafka binding (binary mode) headers for one event."""
    return [
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", source.encode()),
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_time", rfc3339(time).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]


def row_headers(headers: Mapping[str, Json]) -> list[tuple[str, bytes]]:
    """A row's own headers as Kafka headers: strings as they are, other values as JSON text.

    Names the CloudEvents binding reserves (``ce_*``, ``content-type``) are dropped, so
    ``ce_id`` is always the row's id and consumers can rely on it to drop duplicates.
    """
    result = []
    for name, value in headers.items():
        if name.lower().startswith(_RESERVED_PREFIX) or name.lower() in _RESERVED:
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        result.append((name, text.encode()))
    return result


def rfc3339(time: datetime) -> str:
    """``2024-05-01T12:00:00.123456Z``: UTC, microseconds, as CloudEvents' ``time`` wants."""
    if time.tzinfo is None:
        raise ValueError("event times must be timezone-aware")
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------------------------
# Ownership


def ownership_cap(*, partitions: int, live_workers: int) -> int:
    """The most partitions one of ``live_workers`` workers should hold."""
    return math.ceil(partitions / max(1, live_workers))


@dataclass(frozen=True, kw_only=True)
class OwnershipPlan:
    release: tuple[int, ...] = ()  # partitions to give up (more than the cap)
    candidates: tuple[int, ...] = ()  # free partitions to try, in order...
    wanted: int = 0  # ...until this many were taken


def plan_ownership(
    *,
    partitions: int,
    owned: frozenset[int],
    taken: frozenset[int],
    live_workers: int,
    order: Sequence[int],
) -> OwnershipPlan:
    """What to release and what to try to take, given who holds what.

    ``taken`` are the partitions some worker (maybe this one) holds; ``order`` is a random
    permutation of ``range(partitions)``: the order to release and take in.
    """
    cap = ownership_cap(partitions=partitions, live_workers=live_workers)
    if len(owned) > cap:
        excess = len(owned) - cap
        return OwnershipPlan(release=tuple(p for p in order if p in owned)[:excess])
    free = tuple(p for p in order if p not in owned and p not in taken)
    return OwnershipPlan(candidates=free, wanted=min(cap - len(owned), len(free)))


# ---------------------------------------------------------------------------------------------
# Failures


class Verdict(Enum):
    RETRY = "retry"
    DEAD = "dead"


def failure_verdict(*, attempts: int, max_attempts: int) -> Verdict:
    """What becomes of a row that failed once more, having failed ``attempts`` times before."""
    return Verdict.DEAD if attempts + 1 >= max_attempts else Verdict.RETRY


class Outcome(Enum):
    DELIVERED = "delivered"  # Kafka acknowledged the record
    FAILED = "failed"  # Kafka (or the client) refused this record: its own fault
    UNSENT = "unsent"  # not sent, or no answer in time: nobody's verdict on the record


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One row's result in a batch, in the batch's order."""

    row_id: str
    aggregate_id: str
    attempts: int  # failed attempts before this one
    outcome: Outcome
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class Failure:
    row_id: str
    aggregate_id: str
    attempt: int  # the number of this failed attempt (1-based)
    error: str


@dataclass(frozen=True, kw_only=True)
class Settlement:
    published: tuple[str, ...] = ()
    retry: tuple[Failure, ...] = ()  # attempts + 1, stays pending
    dead: tuple[Failure, ...] = ()  # attempts + 1, dead-lettered
    stalled: frozenset[str] = field(default_factory=frozenset)  # aggregates held back


def settle(attempts: Sequence[Attempt], *, max_attempts: int) -> Settlement:
    """Which rows are published, retried later or dead, keeping each aggregate in order."""
    published: list[str] = []
    retry: list[Failure] = []
    dead: list[Failure] = []
    stalled: set[str] = set()
    for row in attempts:
        if row.aggregate_id in stalled:
            continue  # an earlier row of this aggregate is still pending: wait for it
        if row.outcome is Outcome.DELIVERED:
            published.append(row.row_id)
        elif row.outcome is Outcome.UNSENT:
            stalled.add(row.aggregate_id)
        else:
            failure = Failure(
                row_id=row.row_id,
                aggregate_id=row.aggregate_id,
                attempt=row.attempts + 1,
                error=row.error,
            )
            verdict = failure_verdict(attempts=row.attempts, max_attempts=max_attempts)
            if verdict is Verdict.DEAD:
                dead.append(failure)  # never published: the rows after it may go
            else:
                retry.append(failure)
                stalled.add(row.aggregate_id)
    return Settlement(
        published=tuple(published),
        retry=tuple(retry),
        dead=tuple(dead),
        stalled=frozenset(stalled),
    )

"""Which saga statuses disagree with the journal, and are worth repairing now.

The resync (``services.resync``) lists what the API server shows and what the journal says;
this decides, purely, which sagas to repair in this round:

- only sagas the journal knows (another fleet's sagas, or one not started yet, are left alone);
- only where the phases differ — the phase is what users and tools act on, and comparing one
  short string per saga keeps a round cheap at any scale;
- only when the journal has been quiet for ``settle_seconds``: a saga that just moved has its
  executor's coalesced write on the way, and repairing it would only race that write;
- at most ``limit`` of them, finished sagas first (their status never changes again on its
  own), so one round stays bounded and the rest wait for the next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ListedSaga:
    """A Saga as the API server lists it: who it is, its version, the phase its status shows."""

    uid: str
    namespace: str
    name: str
    resource_version: str
    generation: int
    phase: str  # "" when the status has none


@dataclass(frozen=True, kw_only=True)
class JournaledSaga:
    """A saga as the journal has it: its phase, and how long since the journal last moved."""

    phase: str
    finished: bool
    quiet_seconds: float


def out_of_date(
    listed: Sequence[ListedSaga],
    journaled: Mapping[str, JournaledSaga],
    *,
    settle_seconds: float,
    limit: int,
) -> list[ListedSaga]:
    """The listed sagas to repair this round, finished ones first."""
    stale = [
        saga
        for saga in listed
        if (truth := journaled.get(saga.uid)) is not None
        and truth.phase != saga.phase
        and truth.quiet_seconds >= settle_seconds
    ]
    stale.sort(key=lambda saga: not journaled[saga.uid].finished)  # stable: list order otherwise
    return stale[:limit]

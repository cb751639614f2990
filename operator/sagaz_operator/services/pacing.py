"""One operator process's budget of status writes, shared by all its running sagas.

Each saga's status is coalesced to at most one PATCH per interval (``services.reporting``).
With many sagas running at once that is still one write per saga per interval: a thousand
sagas and a one-second interval are a thousand PATCHes a second, which the API server pays
for and which slows every saga down. The budget caps the total: with ``running`` sagas and a
budget of ``per_second`` writes a second, each saga's interval stretches to
``running / per_second`` seconds (never below the configured interval). A few sagas still see
their status every interval; under a burst, each saga's status is written less often, and a
saga that finishes within its interval is written once, at the end, which is most of them.

The budget only spaces writes; it never drops one: the last state of every saga is always
written (by the status outbox when it finishes).
"""

from __future__ import annotations


class StatusBudget:
    def __init__(self, writes_per_second: float) -> None:
        if not writes_per_second > 0:
            raise ValueError(f"a write budget is more than 0 a second, not {writes_per_second}")
        self._per_second = writes_per_second
        self._running = 0

    @property
    def running(self) -> int:
        """Sagas writing status under this budget right now."""
        return self._running

    def enter(self) -> None:
        self._running += 1

    def leave(self) -> None:
        self._running = max(0, self._running - 1)

    def spacing(self) -> float:
        """Seconds each saga waits at least between its status writes, at the current load
        (its reporter waits the longer of this and its configured interval)."""
        return self._running / self._per_second

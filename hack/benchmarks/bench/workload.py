"""The diamond saga every system runs, its variants, and what a correct run looks like.

``a`` -> (``b`` || ``c``) -> ``d``; ``a``, ``b``, ``c`` have compensations (``/<step>/undo``).
Each step is ``POST <participant>/<step>`` with a small JSON body and the headers
``X-Saga-Name`` (the saga's id, so the participant can group requests) and
``Idempotency-Key``. The participant answers 400 to ``d`` in the failing variant: a client
error, which every system is told not to retry, so ``d`` fails for good at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

STEPS = ("a", "b", "c", "d")
DEPENDS: dict[str, tuple[str, ...]] = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
COMPENSATED = ("a", "b", "c")

#: What each request waits for, as participant paths: the overhead of a step is its arrival
#: minus the latest arrival among these. Compensations of b and c follow d's failure; the
#: compensation of a follows both of theirs.
AFTER: dict[str, dict[str, tuple[str, ...]]] = {
    "forward": {"/b": ("/a",), "/c": ("/a",), "/d": ("/b", "/c")},
    "compensate": {
        "/b": ("/a",),
        "/c": ("/a",),
        "/d": ("/b", "/c"),
        "/b/undo": ("/d",),
        "/c/undo": ("/d",),
        "/a/undo": ("/b/undo", "/c/undo"),
    },
}


class Variant(enum.Enum):
    """How the participant behaves during one run."""

    INSTANT = "instant"  # answers at once
    SLOW = "20ms"  # answers after 20 ms (every request)
    COMPENSATE = "d-fails"  # d answers 400: a, b, c are compensated

    @property
    def delay(self) -> float:
        return 0.02 if self is Variant.SLOW else 0.0

    @property
    def failing(self) -> tuple[str, ...]:
        return ("d",) if self is Variant.COMPENSATE else ()

    @property
    def outcome(self) -> str:
        """The terminal phase every saga must end in (the operator's names)."""
        return "Compensated" if self is Variant.COMPENSATE else "Succeeded"

    @property
    def paths(self) -> tuple[str, ...]:
        """The participant paths one correct saga calls, each exactly once."""
        forward = tuple(f"/{step}" for step in STEPS)
        if self is Variant.COMPENSATE:
            return forward + tuple(f"/{step}/undo" for step in COMPENSATED)
        return forward

    @property
    def after(self) -> dict[str, tuple[str, ...]]:
        return AFTER["compensate" if self is Variant.COMPENSATE else "forward"]


@dataclass(frozen=True)
class Call:
    """One participant call as every system makes it."""

    url: str
    saga: str
    step: str
    purpose: str  # "action" or "compensation"

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Saga-Name": self.saga,
            "X-Saga-Step": self.step,
            "Idempotency-Key": f"{self.saga}/{self.step}/{self.purpose}",
        }

    @property
    def body(self) -> dict[str, object]:
        return {"saga": self.saga, "step": self.step, "input": {"orderId": self.saga}}


def path(step: str, purpose: str) -> str:
    return f"/{step}" if purpose == "action" else f"/{step}/undo"


class StepFailedError(Exception):
    """A participant refused a step (non-2xx); ``retryable`` as the operator would judge it."""

    def __init__(self, step: str, status: int) -> None:
        super().__init__(f"step {step}: HTTP {status}")
        self.step, self.status = step, status

    @property
    def retryable(self) -> bool:
        return status_retryable(self.status)


def status_retryable(status: int) -> bool:
    """The operator's rule: 5xx, 408, 425, 429 are retried; other 4xx fail at once."""
    return status >= 500 or status in (408, 425, 429)

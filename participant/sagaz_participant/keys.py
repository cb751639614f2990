"""Idempotency keys, and how the operator's keys pair an action with its compensation.

The Sagaz operator sends ``Idempotency-Key: <saga-uid>/<step>/action`` with every attempt of
a step's action and ``<saga-uid>/<step>/compensation`` with every attempt of its
compensation, the same on every retry and after an operator restart. Both keys of a step
share a *scope*, ``<saga-uid>/<step>``: requests take a lock on the scope, so a step's action
and its compensation never run at the same time, and the compensation can look up what
became of the action. Any other key is its own scope and is simply deduplicated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sagaz_participant.errors import InvalidKeyError

MAX_LENGTH = 512


class Purpose(enum.Enum):
    ACTION = "action"
    COMPENSATION = "compensation"


@dataclass(frozen=True, kw_only=True)
class Key:
    value: str
    scope: str  # what the lock is taken on
    purpose: Purpose | None  # None: not a saga key

    @property
    def action(self) -> str:
        """The key of the action this compensation undoes (saga keys only)."""
        return f"{self.scope}/{Purpose.ACTION.value}"


def parse(value: str) -> Key:
    if not value or len(value) > MAX_LENGTH or not value.isprintable():
        raise InvalidKeyError(
            f"an Idempotency-Key must be 1 to {MAX_LENGTH} printable characters, got {value!r:.80}"
        )
    parts = value.split("/")
    if len(parts) == 3 and all(parts) and parts[2] in {p.value for p in Purpose}:
        return Key(value=value, scope="/".join(parts[:2]), purpose=Purpose(parts[2]))
    return Key(value=value, scope=value, purpose=None)

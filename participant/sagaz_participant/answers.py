"""What a participant answers: an HTTP status, a body and a few headers.

Only *final* answers are stored and replayed. A 5xx, 408, 425 or 429 tells the operator to
try again (it retries those), so replaying it for ever would turn a passing fault into a
failed step: such an answer is returned once, and the request's writes are rolled back so
the retry starts from nothing. Every other status — success or refusal — is the decision
for that key, stored with the writes that made it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

RETRIED_STATUSES = frozenset({408, 425, 429})

# Headers that describe one transfer, not the answer: never stored, never replayed.
_PER_TRANSFER = frozenset({"content-length", "transfer-encoding", "connection", "date", "server"})


@dataclass(frozen=True, kw_only=True)
class Answer:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, value: Any, *, status: int = 200) -> Answer:
        return cls(
            status=status,
            body=json.dumps(value, separators=(",", ":")).encode(),
            headers=(("content-type", "application/json"),),
        )

    @property
    def final(self) -> bool:
        """True when the operator would not retry it: it is the key's answer for good."""
        return self.status < 500 and self.status not in RETRIED_STATUSES

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300

    def value(self) -> Any:
        """The body as JSON (None when empty)."""
        return json.loads(self.body) if self.body else None


def storable_headers(headers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((k.lower(), v) for k, v in headers if k.lower() not in _PER_TRANSFER)

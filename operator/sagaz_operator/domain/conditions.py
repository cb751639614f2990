"""Kubernetes-style status conditions: ``lastTransitionTime`` moves only on a real change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sagaz_operator.domain.model import Json


def upsert(
    existing: Sequence[dict[str, Any]],
    *,
    type: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[dict[str, Json]]:
    """``existing`` with the ``type`` condition set; others are kept as they are."""
    value = "True" if status else "False"
    previous = next((c for c in existing if c.get("type") == type), None)
    changed = previous is None or previous.get("status") != value
    condition: dict[str, Json] = {
        "type": type,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": (
            now.strftime("%Y-%m-%dT%H:%M:%SZ")
            if changed or previous is None
            else previous.get("lastTransitionTime")
        ),
    }
    return [*(dict(c) for c in existing if c.get("type") != type), condition]

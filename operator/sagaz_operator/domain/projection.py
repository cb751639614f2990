"""The Saga's ``.status``: a bounded projection of its state.

PostgreSQL holds the whole journal; the status shows what ``kubectl get/describe`` users need
and stays far below etcd's object size limit whatever a participant returns: long messages
are cut, and an output larger than ``MAX_OUTPUT_BYTES`` is left out (``outputTruncated``);
so is one the journal itself only kept as a truncation marker (``storable.truncated``).
"""

from __future__ import annotations

import json
from datetime import datetime

from sagaz_operator.api.saga import StepPhase
from sagaz_operator.domain import storable
from sagaz_operator.domain.model import Json
from sagaz_operator.domain.state import SagaState, StepState

MAX_OUTPUT_BYTES = 1024
MAX_TEXT = 1024
MAX_ERROR = 512


def status(
    state: SagaState,
    *,
    now: datetime,
    definition_name: str,
    definition_generation: int,
) -> dict[str, Json]:
    steps = state.steps
    succeeded = sum(1 for s in steps.values() if s.applied)
    result: dict[str, Json] = {
        "phase": state.phase.value,
        "message": _cut(state.message or _running_message(state), MAX_TEXT),
        "definition": {"name": definition_name, "generation": definition_generation},
        "progress": f"{succeeded}/{len(steps)}",
        "currentStep": ",".join(_current(state)) or None,
        "startedAt": _time(state.started_at),
        "finishedAt": _time(state.finished_at),
        "duration": _duration(state, now),
        "steps": [_step(name, step) for name, step in steps.items()],
        "observedRetry": state.retry_seen,
    }
    return result


def _step(name: str, step: StepState) -> dict[str, Json]:
    body: dict[str, Json] = {
        "name": name,
        "phase": step.phase.value,
        "attempts": step.action.count,
        "compensationAttempts": step.compensation.count,
        "startedAt": _time(step.started_at),
        "finishedAt": _time(step.finished_at),
        "error": _cut(step.error, MAX_ERROR) if step.error else None,
        "output": None,
        "outputTruncated": False,
    }
    if storable.is_marker(step.output):
        body["output"], body["outputTruncated"] = step.output, True
    elif step.output is not None:
        if len(json.dumps(step.output, separators=(",", ":"))) <= MAX_OUTPUT_BYTES:
            body["output"] = step.output
        else:
            body["outputTruncated"] = True
    return body


def _current(state: SagaState) -> list[str]:
    busy = (StepPhase.RUNNING, StepPhase.COMPENSATING)
    return [name for name, step in state.steps.items() if step.phase in busy]


def _running_message(state: SagaState) -> str:
    if state.failure is not None:
        return state.failure.message
    return ""


def _duration(state: SagaState, now: datetime) -> str | None:
    if state.started_at is None:
        return None
    seconds = int(((state.finished_at or now) - state.started_at).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60}m"


def _time(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

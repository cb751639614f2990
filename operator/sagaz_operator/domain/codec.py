"""Journal events to JSON and back, and their public form in the outbox.

The journal stores each event as ``{"type": <class name>, ...fields}`` so ``decode`` rebuilds
exactly the dataclass ``encode`` was given. The outbox carries the same facts under the
public event names consumers subscribe to (``StepCompensated``, ``SagaCompensated``...);
those names and payloads are part of the product's contract (see README, "Saga events").
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from datetime import datetime
from typing import Any

from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Json, StepName

#: Every member of the ``Event`` union, by class name: a new event decodes without a change here.
_TYPES: dict[str, type[ev.Event]] = {cls.__name__: cls for cls in typing.get_args(ev.Event)}
#: Their fields' names, once (``dataclasses.fields`` works them out anew on every call).
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(field.name for field in dataclasses.fields(cls)) for cls in _TYPES.values()
}

#: Journal event -> public outbox event type, where the two differ.
_PUBLIC_NAMES = {
    "CompensationSucceeded": "StepCompensated",
    "CompensationFailed": "StepCompensationFailed",
    "CompensationDispatched": "StepCompensationDispatched",
}


def encode(event: ev.Event) -> dict[str, Json]:
    body: dict[str, Json] = {"type": type(event).__name__}
    for name in _FIELDS[type(event)]:
        body[name] = _encode_value(getattr(event, name))
    return body


def decode(body: dict[str, Any]) -> ev.Event:
    fields = dict(body)
    cls = _TYPES[fields.pop("type")]
    fields["at"] = datetime.fromisoformat(fields["at"])
    if "reason" in fields:
        fields["reason"] = ev.FailureReason(fields["reason"])
    if "outcome" in fields:
        fields["outcome"] = ev.Outcome(fields["outcome"])
    if "step" in fields:
        fields["step"] = StepName(fields["step"])
    return cls(**fields)


def public_type(event: ev.Event) -> str:
    """The outbox ``event_type``: SagaFinished becomes Saga<Outcome>, e.g. SagaCompensated."""
    if isinstance(event, ev.SagaFinished):
        return f"Saga{event.outcome.value}"
    name = type(event).__name__
    return _PUBLIC_NAMES.get(name, name)


def public_payload(
    event: ev.Event, *, saga_name: str, namespace: str, definition: str
) -> dict[str, Json]:
    """The outbox payload: the event's fields plus which saga it belongs to."""
    payload = encode(event)
    payload.pop("type")
    payload["saga"] = {"name": saga_name, "namespace": namespace, "definition": definition}
    return payload


def _encode_value(value: Any) -> Json:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    result: Json = value
    return result

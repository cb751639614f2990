"""What the journal keeps of a saga besides its events: who it is and what it runs.

The record is written once, together with the saga's first event (its start verdict), so a
record never exists without the verdict; ``Stored`` is what a later run reads back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Json


@dataclass(frozen=True, kw_only=True)
class SagaRecord:
    """What is fixed when a saga starts: who it is and the definition it runs."""

    uid: str
    namespace: str
    name: str
    definition_name: str
    definition_generation: int
    definition: dict[str, Json]  # the SagaDefinition spec, as the API had it
    input: Json


@dataclass(frozen=True, kw_only=True)
class Stored:
    record: SagaRecord
    journal: list[ev.Event]

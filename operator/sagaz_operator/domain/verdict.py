"""Whether a saga may start: the start verdict, decided once, from what was gathered.

The saga service gathers (the Saga's body, and the SagaDefinition it names, if it names one);
``decide`` judges, in order, and the first failed check is the verdict:

1. the input can be stored at all (``storable``: no NUL, no lone surrogate, no absurd
   nesting) — otherwise nothing else could be journaled either;
2. the spec is well-formed (exactly one of ``definitionRef`` / ``definition``...);
3. the referenced SagaDefinition exists, and it (or the inline one) can be stored;
4. the definition is valid (schema, graph, templates);
5. the input matches the definition's ``inputSchema``.

The verdict carries the record to journal and the first event (``SagaStarted`` or
``SagaRejected``); both are written in one transaction, so no run ever finds a record
without its verdict. Journals written before that was so may hold a record and no event:
``rederive`` judges such a record again from its own snapshot.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic

from sagaz_operator.api.saga import SagaSpec
from sagaz_operator.domain import definitions, inputs, storable
from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Definition, Json
from sagaz_operator.domain.record import SagaRecord
from sagaz_operator.errors import DefinitionError

#: How many distinct definitions (by source) stay parsed: the ones sagas start from now.
BUILT_DEFINITIONS = 32

#: Stands in for the definition of a saga rejected before one could be resolved.
NOTHING = Definition(steps=())


@dataclass(frozen=True, kw_only=True)
class Referenced:
    """What the gatherer found for ``spec.definitionRef``; ``spec`` None: there is none."""

    name: str
    spec: Mapping[str, Any] | None
    generation: int = 0


@dataclass(frozen=True, kw_only=True)
class Verdict:
    record: SagaRecord
    definition: Definition  # ``NOTHING`` when rejected before one was built
    rejection: str | None  # why the saga cannot run; None: it starts

    def first_event(self, at: datetime) -> ev.SagaStarted | ev.SagaRejected:
        if self.rejection is None:
            return ev.SagaStarted(at=at)
        return ev.SagaRejected(at=at, message=storable.text(self.rejection))


def referenced_name(body: Mapping[str, Any]) -> str | None:
    """The SagaDefinition the gatherer must fetch for ``body``, if it names one."""
    ref = (body.get("spec") or {}).get("definitionRef")
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) and name else None


def decide(body: Mapping[str, Any], *, referenced: Referenced | None) -> Verdict:
    """The start verdict for the Saga ``body``, given the definition it references (if any)."""
    meta = body["metadata"]
    raw_spec = body.get("spec") or {}
    saga_input: Json = raw_spec.get("input") or {}

    def verdict(
        name: str,
        generation: int,
        source: Mapping[str, Any],
        rejection: str | None,
        definition: Definition = NOTHING,
    ) -> Verdict:
        record = SagaRecord(
            uid=str(meta["uid"]),
            namespace=meta["namespace"],
            name=meta["name"],
            definition_name=name,
            definition_generation=generation,
            # A rejected saga's snapshot is kept only if it can be stored.
            definition=dict(source) if rejection is None or _storable(source) else {},
            input=saga_input if rejection is None or _storable(saga_input) else {},
        )
        return Verdict(record=record, definition=definition, rejection=rejection)

    # Before the model: an input nested past its recursion guard would be misreported.
    found = storable.problem(saga_input, path="spec.input")
    if found is not None:
        return verdict("", 0, {}, found)
    try:
        spec = SagaSpec.model_validate(raw_spec)
    except pydantic.ValidationError as error:
        return verdict("", 0, {}, definitions.describe(error, path="spec"))
    if spec.definition is not None:
        source: Mapping[str, Any] = spec.definition.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        name, generation, where = "", int(meta.get("generation", 1)), "spec.definition"
        label = "the inline definition"
    else:
        assert spec.definition_ref is not None  # the model guarantees exactly one
        name = spec.definition_ref.name
        if referenced is None or referenced.name != name or referenced.spec is None:
            message = f"SagaDefinition '{name}' not found in namespace {meta['namespace']}"
            return verdict(name, 0, {}, message)
        source, generation, where = referenced.spec, referenced.generation, "spec"
        label = f"SagaDefinition '{name}'"
    found = storable.problem(source, path=where)
    if found is not None:
        return verdict(name, generation, source, f"{label} cannot be stored: {found}")
    definition, rejection = _judge(source, where=where, label=label, saga_input=saga_input)
    return verdict(name, generation, source, rejection, definition)


def rederive(record: SagaRecord) -> Verdict:
    """The verdict for a record journaled without one (by an operator older than this rule).

    Such an operator journaled an empty snapshot only for a saga it could not resolve, so an
    empty snapshot is a rejection; any other snapshot is judged again as it was stored.
    """
    name = record.definition_name
    if not record.definition:
        what = f"SagaDefinition '{name}'" if name else "the saga's definition"
        message = f"{what} could not be resolved when the saga started"
        return Verdict(record=record, definition=NOTHING, rejection=message)
    label = f"SagaDefinition '{name}'" if name else "the inline definition"
    definition, rejection = _judge(
        record.definition,
        where="spec" if name else "spec.definition",
        label=label,
        saga_input=record.input,
    )
    return Verdict(record=record, definition=definition, rejection=rejection)


def _judge(
    source: Mapping[str, Any], *, where: str, label: str, saga_input: Json
) -> tuple[Definition, str | None]:
    """Checks 4 and 5: the definition to run, and why the saga cannot run it (if so)."""
    built = _built(json.dumps(source, sort_keys=True, separators=(",", ":")), where)
    if isinstance(built, str):
        return NOTHING, f"{label} is invalid: {built}"
    definition, input_schema = built
    problems = inputs.problems(input_schema, saga_input)
    if problems:
        return definition, "invalid input: " + "; ".join(problems)
    return definition, None


@functools.lru_cache(maxsize=BUILT_DEFINITIONS)
def _built(source: str, where: str) -> tuple[Definition, Mapping[str, Any] | None] | str:
    """The definition in ``source`` (as JSON) and its input schema, or why it is invalid.

    Every saga of one SagaDefinition generation has the same source, so it is parsed and
    checked (schema, graph, templates: most of a saga's start) once, not per saga; the key is
    the source itself, so a changed definition is never mistaken for the one it replaced.
    The results are immutable (frozen dataclasses; the schema is only read).
    """
    try:
        parsed = definitions.parse(json.loads(source), path=where)
        return definitions.build(parsed), parsed.input_schema
    except DefinitionError as error:
        return str(error)


def _storable(value: object) -> bool:
    return storable.problem(value, path="") is None

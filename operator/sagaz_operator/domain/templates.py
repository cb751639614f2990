"""The ``${...}`` template language that passes data between a saga and its participants.

A step's call may refer to the saga's input, to earlier steps' outputs and to the saga's own
identity::

    ${input.orderId}                  ${input.items.0.sku}       (numeric segments index lists)
    ${steps.reserve-inventory.output.reservationId}
    ${saga.name}  ${saga.uid}  ${saga.namespace}

Rules, chosen so that a template can only *select* data, never compute it:

- A reference is a root (``input``, ``steps`` or ``saga``) and a dotted path of segments made of
  letters, digits, ``_`` and ``-`` (step names are DNS labels). Anything else between ``${`` and
  ``}`` -- spaces, operators, brackets, quotes -- is rejected rather than guessed at: there are no
  expressions, filters or defaults, so there is nothing to evaluate and no code to inject. Input
  keys outside that alphabet cannot be addressed one by one; refer to their parent object.
- A string that is exactly one reference becomes the referenced value with its JSON type, so
  ``{"items": "${input.items}"}`` sends a list, not the text of one. A reference inside a longer
  string is rendered as text: strings as they are, anything else as compact JSON.
- ``$${`` is a literal ``${`` (as in Terraform and Argo), so a participant can still be sent text
  that looks like a template. The price is that a literal ``$`` directly before a reference
  cannot be written.
- Only string values are templated; object keys never are, so a body's shape is fixed by the
  definition and a saga's input cannot add or rename fields.
- A reference to something that does not exist raises ``TemplateError`` naming the full path and
  where the lookup stopped; the step then fails instead of sending a participant a silent null.
- Substitution is plain text: a value rendered into a URL is not percent-encoded, exactly as
  written in the definition.

Syntax is checked without a context (``references``, ``reference_problems``), so a definition
with a malformed template, or one that uses a step's output without depending on that step, is
refused when it is applied rather than when a saga reaches the step.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sagaz_operator.domain import dag
from sagaz_operator.domain.model import Call, HttpCall, Json, Step, StepName
from sagaz_operator.errors import DefinitionError, TemplateError

_OPENING = re.compile(r"\$\$\{|\$\{")  # the escape first: "$${" must never start a reference
_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]+")
_LIST_INDEX = re.compile(r"0|[1-9][0-9]*")
_SAGA_FIELDS = ("name", "uid", "namespace")


@dataclass(frozen=True, kw_only=True)
class TemplateContext:
    """Everything a template may refer to when a step's call is rendered."""

    saga_name: str
    saga_uid: str
    saga_namespace: str
    input: Json
    outputs: Mapping[str, Json] = field(default_factory=dict)  # succeeded steps only


def render(value: Json, context: TemplateContext) -> Json:
    """``value`` with every template in its strings replaced; the input is not modified."""
    if isinstance(value, str):
        return _render_string(value, context)
    if isinstance(value, list):
        return [render(item, context) for item in value]
    if isinstance(value, dict):
        return _render_object(value, context)
    return value


def render_text(text: str, context: TemplateContext) -> str:
    """``text`` with every template rendered as text, even one that makes up the whole string.

    For places that only take strings, such as URLs and header values.
    """
    return "".join(
        part if isinstance(part, str) else _as_text(_resolve(part, context))
        for part in _parse(text)
    )


def render_call(call: Call, context: TemplateContext) -> Call:
    """A call with its templated fields rendered: an HTTP call's URL, header values and body,
    a Job's pod template."""
    if isinstance(call, HttpCall):
        return dataclasses.replace(
            call,
            url=render_text(call.url, context),
            headers={name: render_text(value, context) for name, value in call.headers.items()},
            body=render(call.body, context),
        )
    return dataclasses.replace(call, template=_render_object(call.template, context))


def references(value: Json) -> frozenset[StepName]:
    """The steps whose outputs ``value`` refers to; raises ``TemplateError`` if malformed."""
    return frozenset(
        StepName(part.path[0])
        for text in _strings(value)
        for part in _parse(text)
        if isinstance(part, _Reference) and part.root == "steps"
    )


def call_references(call: Call) -> frozenset[StepName]:
    """The steps whose outputs a call refers to in any of its templated fields."""
    if isinstance(call, HttpCall):
        fields: list[Json] = [call.url, list(call.headers.values()), call.body]
    else:
        fields = [dict(call.template)]
    return frozenset().union(*(references(value) for value in fields))


def reference_problems(steps: Sequence[Step]) -> list[str]:
    """Malformed templates, and references to outputs that may not exist when a call is made.

    A step's action may only use outputs of its transitive dependencies: those are the only
    steps guaranteed to have succeeded before it starts. Its compensation may also use the
    step's own output (to release what the action reserved). While the graph itself is broken
    (see ``dag.problems``) only the template syntax is checked.
    """
    try:
        graph: dag.Graph | None = dag.Graph(steps)
    except DefinitionError:
        graph = None
    found: list[str] = []
    for step in steps:
        found.extend(_call_problems(step, "action", graph))
        found.extend(_call_problems(step, "compensation", graph))
    return found


# --- parsing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reference:
    source: str  # "${...}" exactly as written, for messages
    root: str
    path: tuple[str, ...]  # the segments after the root


_Part = str | _Reference


def _parse(text: str) -> tuple[_Part, ...]:
    """Split ``text`` into literal text and references, resolving ``$${`` escapes."""
    parts: list[_Part] = []
    literal = ""
    position = 0
    while (opening := _OPENING.search(text, position)) is not None:
        literal += text[position : opening.start()]
        position = opening.end()
        if opening.group() == "$${":
            literal += "${"
            continue
        closing = text.find("}", position)
        if closing == -1:
            unterminated = _shorten(text[opening.start() :])
            raise TemplateError(
                f"unterminated template {unterminated!r}: missing '}}' "
                "(write '$${' for a literal '${')"
            )
        if literal:
            parts.append(literal)
            literal = ""
        parts.append(_reference(text[opening.start() : closing + 1]))
        position = closing + 1
    literal += text[position:]
    if literal:
        parts.append(literal)
    return tuple(parts)


def _reference(source: str) -> _Reference:
    body = source[2:-1]
    if not body:
        raise TemplateError(f"template {source}: empty reference")
    if not _PATH.fullmatch(body):
        if _PATH_CHARACTERS.fullmatch(body):
            raise TemplateError(f"template {source}: empty path segment")
        raise TemplateError(
            f"template {source}: only dotted paths such as ${{input.a.b}} are allowed; "
            "expressions are not supported"
        )
    root, *path = body.split(".")
    if root == "steps" and (len(path) < 2 or path[1] != "output"):
        raise TemplateError(f"template {source}: expected ${{steps.<name>.output...}}")
    if root == "saga" and (len(path) != 1 or path[0] not in _SAGA_FIELDS):
        raise TemplateError(
            f"template {source}: expected ${{saga.name}}, ${{saga.uid}} or ${{saga.namespace}}"
        )
    if root not in ("input", "steps", "saga"):
        raise TemplateError(
            f"template {source}: unknown root '{root}' (expected input, steps or saga)"
        )
    return _Reference(source=source, root=root, path=tuple(path))


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- resolving ------------------------------------------------------------------------------


def _render_string(text: str, context: TemplateContext) -> Json:
    parts = _parse(text)
    if len(parts) == 1 and isinstance(parts[0], _Reference):
        return _resolve(parts[0], context)  # exactly one template: keep the value's JSON type
    return "".join(
        part if isinstance(part, str) else _as_text(_resolve(part, context)) for part in parts
    )


def _render_object(value: Mapping[str, Json], context: TemplateContext) -> dict[str, Json]:
    return {key: render(item, context) for key, item in value.items()}


def _resolve(reference: _Reference, context: TemplateContext) -> Json:
    if reference.root == "saga":
        return {
            "name": context.saga_name,
            "uid": context.saga_uid,
            "namespace": context.saga_namespace,
        }[reference.path[0]]
    if reference.root == "input":
        value, walked, segments = context.input, "input", reference.path
    else:
        step = reference.path[0]
        if step not in context.outputs:
            raise TemplateError(f"template {reference.source}: step '{step}' has no output")
        value, walked, segments = context.outputs[step], f"steps.{step}.output", reference.path[2:]
    for segment in segments:
        value = _child(reference, value, segment, walked)
        walked = f"{walked}.{segment}"
    return value


def _child(reference: _Reference, value: Json, segment: str, walked: str) -> Json:
    """One step down the path; ``walked`` is the path to ``value``, for messages."""
    if isinstance(value, dict):
        if segment not in value:
            raise TemplateError(f"template {reference.source}: '{segment}' not found in {walked}")
        return value[segment]
    if isinstance(value, list):
        if not _LIST_INDEX.fullmatch(segment):
            raise TemplateError(
                f"template {reference.source}: '{segment}' is not a list index, "
                f"and {walked} is a list"
            )
        if int(segment) >= len(value):
            raise TemplateError(
                f"template {reference.source}: index {segment} out of range in {walked} "
                f"({len(value)} items)"
            )
        return value[int(segment)]
    raise TemplateError(
        f"template {reference.source}: {walked} is {_json_type(value)}, so it has no '{segment}'"
    )


def _as_text(value: Json) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_type(value: Json) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"  # lists and objects are handled by the caller


# --- definition checks ----------------------------------------------------------------------


def _call_problems(
    step: Step, field_name: Literal["action", "compensation"], graph: dag.Graph | None
) -> Iterator[str]:
    call = step.action if field_name == "action" else step.compensation
    if call is None:
        return
    try:
        referenced = call_references(call)
    except TemplateError as error:
        yield f"step '{step.name}' {field_name}: {error}"
        return
    if graph is None:
        return
    allowed = graph.ancestors(step.name)
    if field_name == "compensation":
        allowed |= {step.name}  # a compensation may undo what its own action returned
    for name in sorted(referenced - allowed):
        yield _reference_problem(step.name, field_name, name, graph)


def _reference_problem(step: StepName, field_name: str, name: StepName, graph: dag.Graph) -> str:
    if name not in graph:
        return f"step '{step}' {field_name} references unknown step '{name}'"
    if name == step:
        return (
            f"step '{step}' action references its own output, which does not exist yet; "
            "only its compensation may"
        )
    return (
        f"step '{step}' {field_name} references the output of step '{name}', "
        f"but does not depend on '{name}' (directly or transitively)"
    )


def _strings(value: Json) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)

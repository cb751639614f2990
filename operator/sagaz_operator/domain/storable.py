"""What the journal can store, found before it is asked to.

PostgreSQL's ``jsonb`` refuses some values JSON itself allows, and refuses the whole statement
with them: a NUL character (``\\u0000`` cannot be converted to text), a lone UTF-16 surrogate
(``\\ud800``: "Unicode low surrogate must follow a high surrogate"; Python keeps one when it
parses such an escape, Go's JSON replaces it with U+FFFD), and ``NaN`` / ``Infinity``, which
Python's JSON reads and writes but JSON does not have. Found too late, the same ``INSERT``
fails on every retry and the saga never moves again; found here, the value gets a verdict:

- a saga's input or definition holding one is rejected at once, naming the field
  (``spec.input.customer.name: contains a NUL character, which cannot be stored``);
- a participant's answer holding one is a failed step whose call took effect
  (``step_outcome``): it is compensated if the saga rolls back;
- text the operator writes itself (error messages) is cleaned (``text``): such characters
  become U+FFFD and the text is cut to a length the journal and the status can carry.

Sizes are bounded here too. Nesting deeper than ``MAX_DEPTH`` is refused like a NUL: nobody
needs it, and a deep enough document breaks the parsers on the way (PostgreSQL's stack depth,
Python's recursion limit). An output larger than ``MAX_OUTPUT_BYTES`` is journaled as the
marker ``{"truncated": true, "bytes": N}`` instead; the status shows at most
``projection.MAX_OUTPUT_BYTES`` of it anyway.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime

from sagaz_operator.domain import events as ev
from sagaz_operator.domain.model import Json, StepName

#: Deeper JSON than this is refused (input, definition) or replaced by the marker (output).
MAX_DEPTH = 64
#: A step output larger than this (compact JSON, UTF-8) is journaled as the truncation marker.
MAX_OUTPUT_BYTES = 256 * 1024
#: Error messages and other operator-written text are cut to this many characters.
MAX_TEXT = 4096

_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def problem(value: object, *, path: str) -> str | None:
    """The first value under ``value`` the journal cannot store, as ``<path>: <why>``."""
    return _walk(value, path, depth=0)


def text(value: str, *, limit: int = MAX_TEXT) -> str:
    """``value`` made storable: NULs and lone surrogates become U+FFFD, cut to ``limit``."""
    clean = _UNSTORABLE.sub("\ufffd", value)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def truncated(value: Json) -> Json:
    """``value``, or the marker ``{"truncated": true, "bytes": N}`` if it is too large or deep.

    ``value`` must have passed ``problem`` (apart from its depth).
    """
    if _depth_exceeds(value, MAX_DEPTH):
        return {"truncated": True, "bytes": None, "reason": f"nested deeper than {MAX_DEPTH}"}
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_OUTPUT_BYTES:
        return {"truncated": True, "bytes": size}
    return value


def is_marker(value: object) -> bool:
    """Whether ``value`` is the marker ``truncated`` put in place of an output."""
    return isinstance(value, dict) and value.get("truncated") is True and "bytes" in value


def step_outcome(*, at: datetime, step: StepName, attempt: int, output: Json) -> ev.Event:
    """The event for an action a participant answered with 2xx and ``output``.

    An output the journal cannot hold does not make the call undone: the step fails for good,
    marked as possibly applied, so a rollback compensates it.
    """
    found = _walk(output, "output", depth=0, deep_ok=True)
    if found is not None:
        return ev.StepFailed(
            at=at,
            step=step,
            attempt=attempt,
            error=text(f"the participant answered, but its {found}; the step took effect"),
            retryable=False,
            outcome_unknown=True,
        )
    return ev.StepSucceeded(at=at, step=step, attempt=attempt, output=truncated(output))


def _walk(value: object, path: str, *, depth: int, deep_ok: bool = False) -> str | None:
    if depth > MAX_DEPTH:
        return None if deep_ok else f"{path}: is nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return _text_problem(value, path)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path}: is {value!r}, which JSON cannot represent"
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = _member(path, str(key))
            found = _text_problem(str(key), f"{where} (the key)") or _walk(
                item, where, depth=depth + 1, deep_ok=deep_ok
            )
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _walk(item, f"{path}[{index}]", depth=depth + 1, deep_ok=deep_ok)
            if found is not None:
                return found
    return None


def _text_problem(value: str, path: str) -> str | None:
    if "\x00" in value:
        return f"{path}: contains a NUL character, which cannot be stored"
    if _SURROGATE.search(value):
        return f"{path}: contains a lone UTF-16 surrogate, which cannot be stored"
    return None


def _member(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}"
    # ``ensure_ascii`` escapes NULs and surrogates, so the path itself is always storable.
    return f"{path}[{json.dumps(key)}]"


def _depth_exceeds(value: object, limit: int) -> bool:
    if limit < 0:
        return True
    if isinstance(value, Mapping):
        return any(_depth_exceeds(item, limit - 1) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_depth_exceeds(item, limit - 1) for item in value)
    return False

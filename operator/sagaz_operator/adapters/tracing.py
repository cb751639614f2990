"""W3C Trace Context (https://www.w3.org/TR/trace-context/) for calls to participants.

Every participant call carries a ``traceparent`` header so a participant that traces can join
its spans to the saga's trace. A saga keeps one trace id for its whole life (pass it in); every
call is a new span in that trace. Ids come from the operating system's random source, as the
specification asks: they must be unique, not reproducible, so they are not injected.
"""

from __future__ import annotations

import re
import secrets

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SAMPLED = "01"


def new_trace_id() -> str:
    """A random, valid trace id: 32 lower-case hex digits, not all zero."""
    return _random_hex(16)


def new_traceparent(trace_id: str | None = None) -> str:
    """A version-00 ``traceparent`` for a new, sampled span in trace ``trace_id``.

    Without ``trace_id`` a new trace is started. A malformed id raises ``ValueError``.
    """
    if trace_id is None:
        trace_id = new_trace_id()
    elif not _TRACE_ID.fullmatch(trace_id) or trace_id == "0" * 32:
        raise ValueError(f"a trace id is 32 lower-case hex digits, not all zero: {trace_id!r}")
    return f"00-{trace_id}-{_random_hex(8)}-{_SAMPLED}"


def _random_hex(size: int) -> str:
    while True:
        value = secrets.token_hex(size)
        if value.strip("0"):  # the all-zero id is invalid
            return value

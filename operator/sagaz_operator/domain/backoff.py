"""How long to wait before trying a step (or a compensation) again, and whether to try at all.

The delay after failed attempt ``n`` is exponential, ``initial * factor**(n-1)``, capped at
``max``, with *equal jitter*: half of it is fixed and half is scaled by ``jitter`` in ``[0, 1)``.
Equal jitter keeps a guaranteed minimum wait (a struggling participant is never hammered by a
retry drawn near zero, as "full jitter" allows) while still spreading the retries of many
sagas that failed together, so they do not return to the participant in lockstep.

``jitter`` is an argument, never drawn here: the engine gets it from an injected random source,
so a test can state the exact delay it expects.

A participant's ``Retry-After`` is honoured as a lower bound on the wait, but is itself capped at
the policy's ``max_seconds``: the definition's author decides the longest a step ever sits idle
between attempts, and a participant answering ``Retry-After: 86400`` must not park a saga for a
day. Authors who want to honour long Retry-After values raise ``maxSeconds``. So no delay ever
exceeds ``max_seconds``, whatever the participant says.

Backoff values are validated when a definition is parsed (``initialSeconds >= 0``,
``factor >= 1``, ``maxSeconds >= 0``, all finite); a policy outside those bounds here is a
programming error and raises ``ValueError``.
"""

from __future__ import annotations

import math

from sagaz_operator.domain.model import Backoff, RetryPolicy


def delay_seconds(policy: Backoff, *, attempt: int, jitter: float) -> float:
    """The wait after failed attempt number ``attempt`` (1-based), for ``jitter`` in ``[0, 1)``."""
    _check(policy)
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
    half = _capped_exponential(policy, attempt) / 2
    return half + half * jitter


def next_delay_seconds(
    policy: Backoff, *, attempt: int, jitter: float, retry_after_seconds: float | None
) -> float:
    """The wait after failed attempt ``attempt``: the backoff delay, or longer if the participant
    asked for it with ``Retry-After`` -- up to ``policy.max_seconds`` either way."""
    delay = delay_seconds(policy, attempt=attempt, jitter=jitter)
    if retry_after_seconds is None or not retry_after_seconds > 0:  # also drops NaN
        return delay
    return max(delay, min(retry_after_seconds, policy.max_seconds))


def attempts_left(policy: RetryPolicy, *, attempts: int) -> bool:
    """Whether another attempt is allowed after ``attempts`` attempts were made."""
    return attempts < policy.max_attempts


def _capped_exponential(policy: Backoff, attempt: int) -> float:
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, got {attempt}")
    if policy.initial_seconds >= policy.max_seconds:
        return policy.max_seconds  # capped from the start; also covers max_seconds == 0
    exponent = attempt - 1
    if exponent == 0 or policy.factor == 1 or policy.initial_seconds == 0:
        return policy.initial_seconds
    # Decide the cap before exponentiating: factor**exponent overflows a float long before
    # attempt numbers stop being plausible, and past this exponent the cap applies anyway.
    # Comparing the int with a float is exact, so even an absurd attempt number is safe.
    capped_from = (math.log(policy.max_seconds) - math.log(policy.initial_seconds)) / math.log(
        policy.factor
    )
    if exponent >= capped_from:
        return policy.max_seconds
    try:
        grown = policy.initial_seconds * policy.factor**exponent
    except OverflowError:
        # Only a vanishingly small initial delay lets factor**exponent overflow below the cap;
        # logarithms keep the product in range.
        grown = math.exp(math.log(policy.initial_seconds) + exponent * math.log(policy.factor))
    return min(policy.max_seconds, grown)


def _check(policy: Backoff) -> None:
    values = (policy.initial_seconds, policy.factor, policy.max_seconds)
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"backoff values must be finite: {policy}")
    if policy.initial_seconds < 0 or policy.factor < 1 or policy.max_seconds < 0:
        raise ValueError(f"backoff needs initial >= 0, factor >= 1 and max >= 0: {policy}")

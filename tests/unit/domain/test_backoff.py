"""Retry timing: exponential backoff with equal jitter, Retry-After, and attempt budgets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagaz_operator.domain import backoff
from sagaz_operator.domain.model import Backoff, RetryPolicy


def policy(initial: float = 1.0, factor: float = 2.0, maximum: float = 60.0) -> Backoff:
    return Backoff(initial_seconds=initial, factor=factor, max_seconds=maximum)


class TestDelay:
    @pytest.mark.parametrize(
        ("backoff_policy", "attempt", "jitter", "expected"),
        [
            pytest.param(policy(), 1, 0.0, 0.5, id="first-attempt-no-jitter"),
            pytest.param(policy(), 1, 0.5, 0.75, id="first-attempt-half-jitter"),
            pytest.param(policy(), 2, 0.0, 1.0, id="doubles"),
            pytest.param(policy(), 3, 0.25, 2.5, id="third-attempt"),
            pytest.param(policy(), 6, 0.0, 16.0, id="below-the-cap"),
            pytest.param(policy(), 7, 0.0, 30.0, id="capped"),
            pytest.param(policy(), 7, 0.5, 45.0, id="capped-with-jitter"),
            pytest.param(policy(), 10**6, 0.0, 30.0, id="huge-attempt"),
            pytest.param(policy(), 10**400, 0.0, 30.0, id="attempt-beyond-float-range"),
            pytest.param(policy(factor=1.0), 50, 0.0, 0.5, id="constant"),
            pytest.param(policy(initial=0.0), 5, 0.9, 0.0, id="no-delay"),
            pytest.param(policy(maximum=0.0), 5, 0.9, 0.0, id="zero-cap"),
            pytest.param(policy(initial=90.0), 1, 0.0, 30.0, id="initial-above-cap"),
            pytest.param(policy(initial=0.1, factor=10.0, maximum=1e9), 4, 0.0, 50.0, id="factor"),
        ],
    )
    def test_is_capped_exponential_with_equal_jitter(
        self, backoff_policy: Backoff, attempt: int, jitter: float, expected: float
    ) -> None:
        delay = backoff.delay_seconds(backoff_policy, attempt=attempt, jitter=jitter)
        assert delay == pytest.approx(expected)

    def test_survives_a_vanishingly_small_initial_delay(self) -> None:
        tiny = policy(initial=5e-324, maximum=1e6)
        assert backoff.delay_seconds(tiny, attempt=1030, jitter=0.0) == pytest.approx(2.0**-46)
        assert backoff.delay_seconds(tiny, attempt=1200, jitter=0.0) == 5e5

    @pytest.mark.parametrize(
        ("backoff_policy", "attempt", "jitter", "message"),
        [
            pytest.param(policy(), 0, 0.0, "numbered from 1", id="attempt-zero"),
            pytest.param(policy(), 1, 1.0, r"jitter must be in \[0, 1\)", id="jitter-one"),
            pytest.param(policy(), 1, -0.1, "jitter must be", id="jitter-negative"),
            pytest.param(policy(), 1, math.nan, "jitter must be", id="jitter-nan"),
            pytest.param(policy(factor=0.5), 1, 0.0, "factor >= 1", id="shrinking"),
            pytest.param(policy(initial=-1.0), 1, 0.0, "initial >= 0", id="negative-initial"),
            pytest.param(policy(maximum=-1.0), 1, 0.0, "max >= 0", id="negative-cap"),
            pytest.param(policy(maximum=math.inf), 1, 0.0, "finite", id="infinite-cap"),
        ],
    )
    def test_rejects_arguments_outside_its_contract(
        self, backoff_policy: Backoff, attempt: int, jitter: float, message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            backoff.delay_seconds(backoff_policy, attempt=attempt, jitter=jitter)


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("retry_after", "expected"),
        [
            pytest.param(None, 4.0, id="absent"),
            pytest.param(1.0, 4.0, id="shorter-than-backoff"),
            pytest.param(20.0, 20.0, id="longer-than-backoff"),
            pytest.param(86400.0, 60.0, id="capped-at-max"),
            pytest.param(0.0, 4.0, id="zero"),
            pytest.param(-5.0, 4.0, id="negative"),
            pytest.param(math.nan, 4.0, id="nan"),
            pytest.param(math.inf, 60.0, id="infinite"),
        ],
    )
    def test_is_a_lower_bound_up_to_the_cap(
        self, retry_after: float | None, expected: float
    ) -> None:
        delay = backoff.next_delay_seconds(
            policy(), attempt=4, jitter=0.0, retry_after_seconds=retry_after
        )
        assert delay == expected


class TestAttemptsLeft:
    @pytest.mark.parametrize(
        ("max_attempts", "attempts", "expected"),
        [(3, 0, True), (3, 2, True), (3, 3, False), (3, 7, False), (1, 1, False), (1, 0, True)],
    )
    def test_counts_attempts_made_against_the_budget(
        self, max_attempts: int, attempts: int, expected: bool
    ) -> None:
        retry = RetryPolicy(max_attempts=max_attempts)
        assert backoff.attempts_left(retry, attempts=attempts) is expected


# --- properties -----------------------------------------------------------------------------

policies = st.builds(
    Backoff,
    initial_seconds=st.floats(min_value=0, max_value=1e6),
    factor=st.floats(min_value=1, max_value=100),
    max_seconds=st.floats(min_value=0, max_value=1e6),
)
attempts = st.integers(min_value=1, max_value=5000)
jitters = st.floats(min_value=0, max_value=1, exclude_max=True)


@given(policies, attempts, jitters)
def test_delay_never_shrinks_as_attempts_grow(
    backoff_policy: Backoff, attempt: int, jitter: float
) -> None:
    now = backoff.delay_seconds(backoff_policy, attempt=attempt, jitter=jitter)
    later = backoff.delay_seconds(backoff_policy, attempt=attempt + 1, jitter=jitter)
    assert now <= later


@given(policies, attempts, jitters)
def test_delay_stays_between_half_the_first_wait_and_the_cap(
    backoff_policy: Backoff, attempt: int, jitter: float
) -> None:
    delay = backoff.delay_seconds(backoff_policy, attempt=attempt, jitter=jitter)
    first = min(backoff_policy.initial_seconds, backoff_policy.max_seconds)
    assert first / 2 <= delay <= backoff_policy.max_seconds


@given(policies, attempts, jitters, st.none() | st.floats(allow_nan=True))
def test_retry_after_only_ever_lengthens_the_wait_and_never_past_the_cap(
    backoff_policy: Backoff, attempt: int, jitter: float, retry_after: float | None
) -> None:
    plain = backoff.delay_seconds(backoff_policy, attempt=attempt, jitter=jitter)
    delay = backoff.next_delay_seconds(
        backoff_policy, attempt=attempt, jitter=jitter, retry_after_seconds=retry_after
    )
    assert plain <= delay <= backoff_policy.max_seconds

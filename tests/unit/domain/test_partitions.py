"""The relay's pure decisions: partition hash, record headers, ownership, and settling a batch."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagaz_operator.domain import partitions
from sagaz_operator.domain.partitions import Attempt, Outcome


class TestPartitionOf:
    @pytest.mark.parametrize(
        ("key", "count", "expected"),
        [
            # sha256("abc") starts ba7816bf: 3128432319
            pytest.param("abc", 2**32, 3128432319, id="the-first-four-bytes-big-endian"),
            pytest.param("abc", 16, 3128432319 % 16, id="modulo-the-count"),
            pytest.param("", 16, 0xE3B0C442 % 16, id="empty-key"),
            pytest.param(
                "é",
                1024,
                int.from_bytes(hashlib.sha256("é".encode()).digest()[:4]) % 1024,
                id="utf8",
            ),
            pytest.param("anything", 1, 0, id="one-partition"),
        ],
    )
    def test_is_sha256_prefix_modulo_count(self, key: str, count: int, expected: int) -> None:
        assert partitions.partition_of(key, count) == expected

    @given(
        key=st.text(alphabet=st.characters(blacklist_categories=["Cs"])), count=st.integers(1, 1024)
    )
    def test_is_in_range_and_stable(self, key: str, count: int) -> None:
        first = partitions.partition_of(key, count)

        assert 0 <= first < count
        assert partitions.partition_of(key, count) == first

    def test_spreads_keys_evenly(self) -> None:
        spread = Counter(partitions.partition_of(f"saga-{i}", 16) for i in range(16_000))

        assert set(spread) == set(range(16))
        assert all(850 <= n <= 1150 for n in spread.values())  # 1000 each, give or take

    def test_refuses_no_partitions(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            partitions.partition_of("a", 0)


class TestHeaders:
    def test_cloudevents_binary_mode(self) -> None:
        headers = partitions.cloudevent_headers(
            event_id="e-1",
            event_type="SagaStarted",
            source="sagaz/sagaz_outbox",
            time=datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        )

        assert headers == [
            ("ce_id", b"e-1"),
            ("ce_type", b"SagaStarted"),
            ("ce_source", b"sagaz/sagaz_outbox"),
            ("ce_specversion", b"1.0"),
            ("ce_time", b"2024-05-01T12:00:00.123456Z"),
            ("content-type", b"application/json"),
        ]

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            partitions.rfc3339(datetime(2024, 5, 1))

    def test_row_headers_stringify_json_and_never_override_the_binding(self) -> None:
        headers = partitions.row_headers(
            {
                "sagaUid": "u-1",
                "sequence": 3,
                "flags": {"a": [1, True, None]},
                "ce_id": "forged",
                "CE_TYPE": "forged",
                "Content-Type": "text/plain",
            }
        )

        assert headers == [
            ("sagaUid", b"u-1"),
            ("sequence", b"3"),
            ("flags", b'{"a":[1,true,null]}'),
        ]


class TestTopics:
    @pytest.mark.parametrize("name", ["saga-events", "a.b_c-D9", "x" * 249])
    def test_valid(self, name: str) -> None:
        assert partitions.valid_topic(name)

    @pytest.mark.parametrize("name", ["", ".", "..", "has space", "ü", "x" * 250, "a/b"])
    def test_invalid(self, name: str) -> None:
        assert not partitions.valid_topic(name)


def plan(
    *, owned: set[int], taken: set[int], live: int, count: int = 16
) -> partitions.OwnershipPlan:
    return partitions.plan_ownership(
        partitions=count,
        owned=frozenset(owned),
        taken=frozenset(taken | owned),
        live_workers=live,
        order=list(reversed(range(count))),
    )


class TestOwnership:
    @pytest.mark.parametrize(
        ("count", "live", "cap"),
        [(16, 1, 16), (16, 2, 8), (16, 3, 6), (16, 4, 4), (16, 5, 4), (16, 17, 1), (16, 0, 16)],
    )
    def test_cap_is_a_fair_share_rounded_up(self, count: int, live: int, cap: int) -> None:
        assert partitions.ownership_cap(partitions=count, live_workers=live) == cap

    def test_a_lone_worker_takes_everything_in_the_given_order(self) -> None:
        result = plan(owned=set(), taken=set(), live=1)

        assert result.candidates == tuple(reversed(range(16)))
        assert result.wanted == 16
        assert result.release == ()

    def test_takes_only_free_partitions_up_to_the_cap(self) -> None:
        result = plan(owned={0}, taken=set(range(8, 16)), live=2)

        assert result.candidates == (7, 6, 5, 4, 3, 2, 1)
        assert result.wanted == 7

    def test_releases_the_excess_when_workers_join(self) -> None:
        result = plan(owned=set(range(16)), taken=set(), live=4)

        assert result.release == (15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4)
        assert result.candidates == ()

    def test_holds_steady_at_the_cap(self) -> None:
        result = plan(owned={1, 2, 3, 4}, taken=set(range(16)), live=4)

        assert (result.release, result.wanted) == ((), 0)


class TestFailures:
    @pytest.mark.parametrize(
        ("attempts", "max_attempts", "verdict"),
        [
            (0, 10, partitions.Verdict.RETRY),
            (8, 10, partitions.Verdict.RETRY),
            (9, 10, partitions.Verdict.DEAD),
            (0, 1, partitions.Verdict.DEAD),
            (12, 10, partitions.Verdict.DEAD),
        ],
    )
    def test_dead_on_the_last_attempt(
        self, attempts: int, max_attempts: int, verdict: partitions.Verdict
    ) -> None:
        assert partitions.failure_verdict(attempts=attempts, max_attempts=max_attempts) is verdict


def row(
    row_id: str, aggregate: str, outcome: Outcome, *, attempts: int = 0, error: str = ""
) -> Attempt:
    return Attempt(
        row_id=row_id, aggregate_id=aggregate, attempts=attempts, outcome=outcome, error=error
    )


D, F, U = Outcome.DELIVERED, Outcome.FAILED, Outcome.UNSENT


class TestSettle:
    def test_delivered_rows_are_published(self) -> None:
        result = partitions.settle([row("1", "a", D), row("2", "b", D)], max_attempts=3)

        assert result == partitions.Settlement(published=("1", "2"))

    def test_a_failure_holds_back_the_rest_of_its_aggregate_only(self) -> None:
        result = partitions.settle(
            [
                row("a1", "a", D),
                row("a2", "a", F, error="too big"),
                row("b1", "b", D),
                row("a3", "a", D),
                row("b2", "b", D),
            ],
            max_attempts=3,
        )

        assert result.published == ("a1", "b1", "b2")  # a3 went to Kafka too early: sent again
        assert result.retry == (
            partitions.Failure(row_id="a2", aggregate_id="a", attempt=1, error="too big"),
        )
        assert result.stalled == {"a"}

    def test_the_last_attempt_is_dead_and_unblocks_the_aggregate(self) -> None:
        result = partitions.settle(
            [row("a1", "a", F, attempts=2, error="too big"), row("a2", "a", D)], max_attempts=3
        )

        assert result.dead == (
            partitions.Failure(row_id="a1", aggregate_id="a", attempt=3, error="too big"),
        )
        assert result.published == ("a2",)
        assert result.retry == ()

    def test_unsent_rows_cost_no_attempt_and_hold_back_their_aggregate(self) -> None:
        result = partitions.settle(
            [row("a1", "a", D), row("a2", "a", U), row("a3", "a", D), row("b1", "b", U)],
            max_attempts=1,
        )

        assert result.published == ("a1",)
        assert (result.retry, result.dead) == ((), ())
        assert result.stalled == {"a", "b"}

    @given(
        st.lists(
            st.tuples(st.sampled_from("abc"), st.sampled_from(list(Outcome)), st.integers(0, 3)),
            max_size=30,
        )
    )
    def test_never_publishes_a_row_after_a_pending_one_of_its_aggregate(
        self, rows: list[tuple[str, Outcome, int]]
    ) -> None:
        batch = [row(str(i), key, outcome, attempts=n) for i, (key, outcome, n) in enumerate(rows)]
        result = partitions.settle(batch, max_attempts=3)
        gone = set(result.published) | {f.row_id for f in result.dead}

        for later, entry in enumerate(batch):
            if entry.row_id in result.published:
                earlier = [e for e in batch[:later] if e.aggregate_id == entry.aggregate_id]
                assert all(e.row_id in gone for e in earlier)


def test_rfc3339_of_utc() -> None:
    assert partitions.rfc3339(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "2024-01-02T03:04:05.000000Z"
    )

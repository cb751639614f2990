"""What the journal cannot store is found first, named by its path, and never retried."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagaz_operator.api.saga import StepPhase
from sagaz_operator.domain import events as ev
from sagaz_operator.domain import projection, state, storable
from sagaz_operator.domain.model import StepName

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


class TestProblem:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (
                {"customer": {"name": "Ann\x00"}},
                "spec.input.customer.name: contains a NUL character, which cannot be stored",
            ),
            (
                {"items": [1, {"sku": "\ud800"}]},
                "spec.input.items[1].sku: contains a lone UTF-16 surrogate, which cannot be stored",
            ),
            (
                {"a.b": "\udc00"},
                'spec.input["a.b"]: contains a lone UTF-16 surrogate, which cannot be stored',
            ),
            (
                {"k\x00": 1},
                'spec.input["k\\u0000"] (the key): contains a NUL character, which cannot be '
                "stored",
            ),
            ({"n": float("nan")}, "spec.input.n: is nan, which JSON cannot represent"),
            ([float("inf")], "spec.input[0]: is inf, which JSON cannot represent"),
            (nested(65), "spec.input" + ".a" * 65 + ": is nested deeper than 64 levels"),
        ],
    )
    def test_names_the_first_unstorable_value(self, value: object, expected: str) -> None:
        assert storable.problem(value, path="spec.input") == expected

    @pytest.mark.parametrize(
        "value",
        [{"emoji": "😀", "bom": "\ufeff", "nonchar": "\uffff", "del": "\x7f"}, nested(64), 1e308],
    )
    def test_accepts_what_postgres_accepts(self, value: object) -> None:
        assert storable.problem(value, path="spec.input") is None

    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3)
            ),
            max_leaves=20,
        )
    )
    def test_a_path_is_always_storable_itself(self, value: object) -> None:
        found = storable.problem({"x": value}, path="spec.input")
        if found is not None:
            where = found.split(": ")[0]
            assert storable.problem(where, path="path") is None


class TestText:
    def test_replaces_what_cannot_be_stored_and_cuts(self) -> None:
        assert storable.text("a\x00b\ud800c") == "a\ufffdb\ufffdc"
        cut = storable.text("x" * 10_000)
        assert len(cut) == storable.MAX_TEXT
        assert cut.endswith("…")


class TestStepOutcome:
    def outcome(self, output: object) -> ev.Event:
        return storable.step_outcome(at=T0, step=StepName("pay"), attempt=1, output=output)  # type: ignore[arg-type]

    def test_an_unstorable_output_fails_the_step_as_applied(self) -> None:
        event = self.outcome({"receipt": {"note": "ok\x00"}})

        assert isinstance(event, ev.StepFailed)
        assert not event.retryable
        assert event.outcome_unknown  # so a rollback compensates it
        assert "output.receipt.note: contains a NUL character" in event.error
        assert "\x00" not in event.error

    def test_a_huge_output_is_replaced_by_a_marker(self) -> None:
        event = self.outcome({"blob": "x" * (storable.MAX_OUTPUT_BYTES + 1)})

        assert isinstance(event, ev.StepSucceeded)
        assert event.output == {"truncated": True, "bytes": storable.MAX_OUTPUT_BYTES + 12}

    def test_a_deep_output_is_replaced_by_a_marker(self) -> None:
        event = self.outcome(nested(500))

        assert isinstance(event, ev.StepSucceeded)
        assert isinstance(event.output, dict)
        assert event.output["truncated"] is True
        json.dumps(event.output)

    def test_a_small_output_is_kept(self) -> None:
        assert self.outcome({"id": 7}) == ev.StepSucceeded(
            at=T0, step=StepName("pay"), attempt=1, output={"id": 7}
        )


def test_the_status_of_a_largest_definition_stays_far_below_the_etcd_limit() -> None:
    """100 steps (the API's maximum), each with a 200 KiB output and a 4 KiB error."""
    from harness.simulation import definition, step

    steps = [step(f"s{i}") for i in range(100)]
    current = state.initial(uid="u", definition=definition(*steps))  # type: ignore[arg-type]
    huge = {"blob": "x" * 200_000}
    failed = state.StepState(phase=StepPhase.FAILED, output=huge, error="e" * 4096)
    current = dataclasses.replace(current, steps=dict.fromkeys(current.steps, failed))
    status = projection.status(current, now=T0, definition_name="d", definition_generation=1)

    assert len(json.dumps(status)) < 256 * 1024

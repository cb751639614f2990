"""The start verdict: decided once, in order, from what the saga service gathered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sagaz_operator.domain import events as ev
from sagaz_operator.domain import verdict
from sagaz_operator.domain.record import SagaRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEPS = {"steps": [{"name": "a", "action": {"http": {"url": "http://shop.test/a"}}}]}
TYPED = {**STEPS, "inputSchema": {"type": "object", "required": ["order"]}}


def saga(spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"uid": "6f1c1d2e-0000-4000-8000-000000000001", "namespace": "ns", "name": "s1"}
    return {"metadata": {**meta, "generation": 1}, "spec": spec}


def ref(spec: dict[str, Any] | None, generation: int = 3) -> verdict.Referenced:
    return verdict.Referenced(name="shop", spec=spec, generation=generation)


class TestDecide:
    def test_a_valid_saga_starts_with_its_snapshot(self) -> None:
        judged = verdict.decide(
            saga({"definitionRef": {"name": "shop"}, "input": {"order": 1}}), referenced=ref(STEPS)
        )

        assert judged.rejection is None
        assert judged.first_event(T0) == ev.SagaStarted(at=T0)
        assert judged.record.definition == STEPS
        assert judged.record.definition_generation == 3
        assert [s.name for s in judged.definition.steps] == ["a"]

    @pytest.mark.parametrize(
        ("spec", "referenced", "message"),
        [
            ({}, None, "spec: "),
            ({"definitionRef": {"name": "shop"}}, ref(None), "SagaDefinition 'shop' not found"),
            (
                {"definitionRef": {"name": "shop"}, "input": {"name": "a\x00"}},
                ref(STEPS),
                "spec.input.name: contains a NUL character, which cannot be stored",
            ),
            (
                {
                    "definition": {
                        "steps": [{"name": "a", "action": {"http": {"url": "http://x/\x00"}}}]
                    }
                },
                None,
                "the inline definition cannot be stored: spec.definition.steps[0].action.http.url:"
                " contains a NUL character",
            ),
            (
                {"definitionRef": {"name": "shop"}},
                ref(
                    {
                        "steps": [
                            {"name": "a", "dependsOn": ["a"], "action": STEPS["steps"][0]["action"]}
                        ]
                    }
                ),
                "SagaDefinition 'shop' is invalid",
            ),
            ({"definitionRef": {"name": "shop"}}, ref(TYPED), "invalid input: spec.input"),
        ],
    )
    def test_rejections_name_the_problem(
        self, spec: dict[str, Any], referenced: verdict.Referenced | None, message: str
    ) -> None:
        judged = verdict.decide(saga(spec), referenced=referenced)
        first = judged.first_event(T0)

        assert isinstance(first, ev.SagaRejected)
        assert message in first.message, first.message

    def test_a_rejected_record_holds_only_what_can_be_stored(self) -> None:
        judged = verdict.decide(
            saga({"definitionRef": {"name": "shop"}, "input": {"name": "a\x00"}}),
            referenced=ref(STEPS),
        )

        assert judged.record.input == {}
        assert judged.record.definition == {}  # judged before the definition was looked at

    def test_input_nested_past_the_limit_is_named_not_misreported_by_the_model(self) -> None:
        deep: Any = 1
        for _ in range(3000):
            deep = [deep]
        judged = verdict.decide(
            saga({"definitionRef": {"name": "shop"}, "input": {"x": deep}}), referenced=ref(STEPS)
        )

        assert judged.rejection == "spec.input.x" + "[0]" * 64 + ": is nested deeper than 64 levels"


class TestRederive:
    """Records journaled without a verdict, by an operator older than the atomic start."""

    def record(self, definition: dict[str, Any], saga_input: object = None) -> SagaRecord:
        return SagaRecord(
            uid="u",
            namespace="ns",
            name="s1",
            definition_name="shop",
            definition_generation=1,
            definition=definition,
            input=saga_input or {},
        )

    def test_an_empty_snapshot_was_a_rejection(self) -> None:
        judged = verdict.rederive(self.record({}))

        assert (
            judged.rejection == "SagaDefinition 'shop' could not be resolved when the saga started"
        )

    def test_invalid_input_is_rejected_again(self) -> None:
        judged = verdict.rederive(self.record(TYPED, {"other": 1}))

        assert judged.rejection is not None
        assert judged.rejection.startswith("invalid input:")

    def test_a_valid_snapshot_starts(self) -> None:
        judged = verdict.rederive(self.record(TYPED, {"order": 1}))

        assert judged.rejection is None
        assert isinstance(judged.first_event(T0), ev.SagaStarted)


class TestParsedOnce:
    """Sagas of one SagaDefinition generation share its parsed definition; any change to the
    source (even under the same name and generation) is parsed anew."""

    def test_the_same_source_is_parsed_once(self) -> None:
        first = verdict.decide(saga({"definitionRef": {"name": "shop"}}), referenced=ref(STEPS))
        again = verdict.decide(
            saga({"definitionRef": {"name": "shop"}}), referenced=ref(dict(STEPS))
        )
        assert again.definition is first.definition

    def test_a_changed_source_is_never_taken_for_the_old_one(self) -> None:
        renamed = {"steps": [{"name": "b", "action": {"http": {"url": "http://shop.test/a"}}}]}
        first = verdict.decide(saga({"definitionRef": {"name": "shop"}}), referenced=ref(STEPS))
        changed = verdict.decide(saga({"definitionRef": {"name": "shop"}}), referenced=ref(renamed))
        assert [s.name for s in first.definition.steps] == ["a"]
        assert [s.name for s in changed.definition.steps] == ["b"]

    def test_each_saga_input_is_still_checked_against_the_shared_schema(self) -> None:
        spec = {"definitionRef": {"name": "shop"}}
        good = verdict.decide(saga({**spec, "input": {"order": 1}}), referenced=ref(TYPED))
        bad = verdict.decide(saga({**spec, "input": {}}), referenced=ref(TYPED))
        assert good.rejection is None
        assert bad.rejection is not None
        assert "order" in bad.rejection

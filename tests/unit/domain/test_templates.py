"""The ``${...}`` template language: typed substitution, escapes, and loud failures."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagaz_operator.domain import templates
from sagaz_operator.domain.model import (
    HttpCall,
    JobCall,
    Json,
    SecretHeader,
    Step,
    StepKind,
    StepName,
)
from sagaz_operator.errors import TemplateError

ITEMS: Json = [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 1}]
INPUT: Json = {
    "orderId": "1001",
    "amount": 99.99,
    "paid": True,
    "note": None,
    "items": ITEMS,
    "customer": {"name": "Zoë", "tags": ["vip"]},
}
OUTPUTS: Mapping[str, Json] = {
    "reserve-inventory": {"reservationId": "r-7", "lines": [10, 20]},
    "charge": None,
}


def context(
    *, input: Json = INPUT, outputs: Mapping[str, Json] = OUTPUTS
) -> templates.TemplateContext:
    return templates.TemplateContext(
        saga_name="order-1001",
        saga_uid="0b5e-uid",
        saga_namespace="shop",
        input=input,
        outputs=outputs,
    )


def http(url: str = "http://svc.test/do", *, body: Json = None) -> HttpCall:
    return HttpCall(url=url, body=body, has_body=body is not None)


def step(
    name: str,
    *,
    after: tuple[str, ...] = (),
    action: HttpCall | JobCall | None = None,
    compensation: HttpCall | JobCall | None = None,
) -> Step:
    return Step(
        name=StepName(name),
        kind=StepKind.COMPENSATABLE,
        depends_on=tuple(StepName(a) for a in after),
        action=action or http(),
        compensation=compensation,
    )


def uses(*step_names: str) -> HttpCall:
    """A call whose body refers to the outputs of ``step_names``."""
    return http(body={name: f"${{steps.{name}.output}}" for name in step_names})


class TestWholeValueTemplates:
    @pytest.mark.parametrize(
        ("template", "expected"),
        [
            ("${input.orderId}", "1001"),
            ("${input.amount}", 99.99),
            ("${input.paid}", True),
            ("${input.note}", None),
            ("${input.items}", ITEMS),
            ("${input.items.1.sku}", "B2"),
            ("${input.customer.tags.0}", "vip"),
            ("${input}", INPUT),
            ("${steps.reserve-inventory.output.reservationId}", "r-7"),
            ("${steps.reserve-inventory.output.lines.1}", 20),
            ("${steps.reserve-inventory.output}", OUTPUTS["reserve-inventory"]),
            ("${steps.charge.output}", None),
            ("${saga.name}", "order-1001"),
            ("${saga.uid}", "0b5e-uid"),
            ("${saga.namespace}", "shop"),
        ],
    )
    def test_keeps_the_json_type_of_the_value(self, template: str, expected: Json) -> None:
        rendered = templates.render(template, context())
        assert rendered == expected
        assert type(rendered) is type(expected)

    def test_numeric_segments_are_keys_in_objects(self) -> None:
        assert templates.render("${input.by-id.7}", context(input={"by-id": {"7": "x"}})) == "x"


class TestTextTemplates:
    @pytest.mark.parametrize(
        ("template", "expected"),
        [
            ("order ${input.orderId}", "order 1001"),
            ("${input.amount} EUR", "99.99 EUR"),
            ("paid=${input.paid}", "paid=true"),
            ("note=${input.note}", "note=null"),
            ("items=${input.items}", 'items=[{"sku":"A1","qty":2},{"sku":"B2","qty":1}]'),
            ("hi ${input.customer}", 'hi {"name":"Zoë","tags":["vip"]}'),
            ("${input.orderId}${input.orderId}", "10011001"),
            ("${saga.namespace}/${saga.name}", "shop/order-1001"),
            ("http://svc/r/${steps.reserve-inventory.output.reservationId}", "http://svc/r/r-7"),
        ],
    )
    def test_renders_values_inside_a_longer_string_as_text(
        self, template: str, expected: str
    ) -> None:
        assert templates.render(template, context()) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("$${input.orderId}", "${input.orderId}"),
            ("a $${b} c ${input.orderId}", "a ${b} c 1001"),
            ("$${", "${"),
            ("$${unterminated", "${unterminated"),
            ("$$${input.orderId}", "$${input.orderId}"),  # the documented price of the escape
            ("costs $5 or $$6 {not a template}", "costs $5 or $$6 {not a template}"),
            ("} $ { $", "} $ { $"),
        ],
    )
    def test_double_dollar_escapes_a_literal_opening(self, text: str, expected: str) -> None:
        assert templates.render(text, context()) == expected

    def test_render_text_always_produces_a_string(self) -> None:
        assert templates.render_text("${input.amount}", context()) == "99.99"
        assert templates.render_text("${input.items.0}", context()) == '{"sku":"A1","qty":2}'
        assert templates.render_text("$${x} ${saga.uid}", context()) == "${x} 0b5e-uid"


class TestStructures:
    def test_renders_nested_values_but_never_object_keys(self) -> None:
        body: Json = {
            "${input.orderId}": "${input.orderId}",
            "lines": ["${input.items.0.qty}", {"deep": ["x ${saga.name}"]}],
            "fixed": 3,
            "flag": False,
            "nothing": None,
        }
        assert templates.render(body, context()) == {
            "${input.orderId}": "1001",
            "lines": [2, {"deep": ["x order-1001"]}],
            "fixed": 3,
            "flag": False,
            "nothing": None,
        }

    def test_does_not_modify_its_argument(self) -> None:
        body: Json = {"a": ["${input.orderId}"]}
        templates.render(body, context())
        assert body == {"a": ["${input.orderId}"]}

    def test_renders_an_http_calls_url_header_values_and_body(self) -> None:
        call = HttpCall(
            url="http://svc.test/orders/${input.orderId}",
            method="PUT",
            headers={"X-Order-${input.orderId}": "${input.amount}"},
            headers_from=(SecretHeader(name="Authorization", secret_name="t", secret_key="k"),),
            body={"id": "${steps.reserve-inventory.output.reservationId}"},
            has_body=True,
        )
        assert templates.render_call(call, context()) == HttpCall(
            url="http://svc.test/orders/1001",
            method="PUT",
            headers={"X-Order-${input.orderId}": "99.99"},
            headers_from=call.headers_from,
            body={"id": "r-7"},
            has_body=True,
        )

    def test_leaves_an_absent_http_body_absent(self) -> None:
        assert templates.render_call(http(), context()) == http()

    def test_renders_a_jobs_pod_template(self) -> None:
        call = JobCall(
            template={"spec": {"containers": [{"name": "c", "args": ["${input.orderId}"]}]}},
            backoff_limit=2,
        )
        assert templates.render_call(call, context()) == JobCall(
            template={"spec": {"containers": [{"name": "c", "args": ["1001"]}]}},
            backoff_limit=2,
        )


class TestMissingValues:
    @pytest.mark.parametrize(
        ("template", "message"),
        [
            (
                "${steps.reserve.output.id}",
                "template ${steps.reserve.output.id}: step 'reserve' has no output",
            ),
            (
                "${steps.reserve-inventory.output.id}",
                "template ${steps.reserve-inventory.output.id}: "
                "'id' not found in steps.reserve-inventory.output",
            ),
            (
                "${input.customer.address.city}",
                "template ${input.customer.address.city}: 'address' not found in input.customer",
            ),
            (
                "${input.items.2.sku}",
                "template ${input.items.2.sku}: index 2 out of range in input.items (2 items)",
            ),
            (
                "${input.items.first}",
                "template ${input.items.first}: 'first' is not a list index, "
                "and input.items is a list",
            ),
            (
                "${input.items.01}",
                "template ${input.items.01}: '01' is not a list index, and input.items is a list",
            ),
            (
                "${input.items.-1}",
                "template ${input.items.-1}: '-1' is not a list index, and input.items is a list",
            ),
            (
                "${input.orderId.x}",
                "template ${input.orderId.x}: input.orderId is a string, so it has no 'x'",
            ),
            (
                "${input.amount.x}",
                "template ${input.amount.x}: input.amount is a number, so it has no 'x'",
            ),
            (
                "${input.paid.x}",
                "template ${input.paid.x}: input.paid is a boolean, so it has no 'x'",
            ),
            (
                "${steps.charge.output.id}",
                "template ${steps.charge.output.id}: "
                "steps.charge.output is null, so it has no 'id'",
            ),
        ],
    )
    def test_fail_naming_the_path(self, template: str, message: str) -> None:
        with pytest.raises(TemplateError) as raised:
            templates.render({"deep": ["text around " + template]}, context())
        assert str(raised.value) == message

    def test_outputs_of_steps_that_did_not_succeed_are_missing(self) -> None:
        with pytest.raises(TemplateError, match="step 'reserve-inventory' has no output"):
            templates.render("${steps.reserve-inventory.output}", context(outputs={}))


MALFORMED = [
    pytest.param("${input.orderId", "unterminated template '${input.orderId", id="unterminated"),
    pytest.param("${}", "empty reference", id="empty"),
    pytest.param("${input..a}", "empty path segment", id="empty-segment"),
    pytest.param("${input.}", "empty path segment", id="trailing-dot"),
    pytest.param("${.input}", "empty path segment", id="leading-dot"),
    pytest.param("${ input.a }", "expressions are not supported", id="spaces"),
    pytest.param("${input.a + 1}", "expressions are not supported", id="operator"),
    pytest.param("${input.a||'x'}", "expressions are not supported", id="default"),
    pytest.param("${len(input)}", "expressions are not supported", id="call"),
    pytest.param("${input['a']}", "expressions are not supported", id="subscript"),
    pytest.param("${__import__('os').system('id')}", "expressions are not supported", id="code"),
    pytest.param("${input.${input.k}}", "expressions are not supported", id="nested"),
    pytest.param("${env.HOME}", "unknown root 'env' (expected input, steps or saga)", id="root"),
    pytest.param("${steps}", "expected ${steps.<name>.output...}", id="steps-bare"),
    pytest.param("${steps.a}", "expected ${steps.<name>.output...}", id="steps-no-output"),
    pytest.param("${steps.a.status}", "expected ${steps.<name>.output...}", id="steps-field"),
    pytest.param("${saga}", "expected ${saga.name}, ${saga.uid} or ${saga.namespace}", id="saga"),
    pytest.param("${saga.labels}", "expected ${saga.name}", id="saga-field"),
    pytest.param("${saga.name.x}", "expected ${saga.name}", id="saga-deeper"),
]


class TestMalformedTemplates:
    @pytest.mark.parametrize(("text", "message"), MALFORMED)
    def test_are_rejected_when_rendered(self, text: str, message: str) -> None:
        with pytest.raises(TemplateError) as raised:
            templates.render(["ok", {"k": f"before {text} after"}], context())
        assert message in str(raised.value)

    @pytest.mark.parametrize(("text", "message"), MALFORMED)
    def test_are_rejected_without_any_context(self, text: str, message: str) -> None:
        with pytest.raises(TemplateError) as raised:
            templates.references({"k": text})
        assert message in str(raised.value)

    def test_long_unterminated_templates_are_shortened_in_the_message(self) -> None:
        with pytest.raises(TemplateError) as raised:
            templates.render("${input." + "x" * 500, context())
        assert len(str(raised.value)) < 150


class TestReferences:
    def test_collects_referenced_steps_anywhere_in_a_value(self) -> None:
        value: Json = {
            "a": "${steps.reserve-inventory.output.id}",
            "b": ["x ${steps.charge.output} ${input.orderId} ${saga.uid}"],
            "${steps.in-a-key.output}": 1,
            "c": "$${steps.escaped.output}",
        }
        assert templates.references(value) == {"reserve-inventory", "charge"}

    def test_a_calls_references_cover_every_templated_field(self) -> None:
        call = HttpCall(
            url="http://svc/${steps.u.output.path}",
            headers={"X-A": "${steps.h.output}"},
            body={"b": "${steps.b.output}"},
            has_body=True,
        )
        assert templates.call_references(call) == {"u", "h", "b"}
        job = JobCall(template={"spec": {"args": ["${steps.j.output.x}"]}})
        assert templates.call_references(job) == {"j"}


class TestReferenceProblems:
    def test_a_step_may_use_its_transitive_dependencies_and_its_compensation_itself(self) -> None:
        steps = [
            step("a"),
            step("b", after=("a",)),
            step("c", after=("b",), action=uses("a", "b"), compensation=uses("a", "c")),
        ]
        assert templates.reference_problems(steps) == []

    @pytest.mark.parametrize(
        ("steps", "expected"),
        [
            pytest.param(
                [step("a"), step("b"), step("c", after=("a",), action=uses("b"))],
                "step 'c' action references the output of step 'b', "
                "but does not depend on 'b' (directly or transitively)",
                id="not-a-dependency",
            ),
            pytest.param(
                [step("a", action=uses("ghost"))],
                "step 'a' action references unknown step 'ghost'",
                id="unknown",
            ),
            pytest.param(
                [step("a", action=uses("a"))],
                "step 'a' action references its own output, which does not exist yet; "
                "only its compensation may",
                id="own-output-in-action",
            ),
            pytest.param(
                [step("a", compensation=uses("b")), step("b", after=("a",))],
                "step 'a' compensation references the output of step 'b', "
                "but does not depend on 'b' (directly or transitively)",
                id="compensation-uses-a-dependent",
            ),
            pytest.param(
                [step("a", compensation=http(body={"x": "${input.x"}))],
                "step 'a' compensation: unterminated template '${input.x': missing '}' "
                "(write '$${' for a literal '${')",
                id="syntax",
            ),
        ],
    )
    def test_names_step_field_and_reference(self, steps: list[Step], expected: str) -> None:
        assert templates.reference_problems(steps) == [expected]

    def test_reports_every_problem_in_definition_order(self) -> None:
        steps = [
            step("b", action=uses("z", "y"), compensation=uses("x")),
            step("a", action=http(url="${bad}")),
        ]
        assert templates.reference_problems(steps) == [
            "step 'b' action references unknown step 'y'",
            "step 'b' action references unknown step 'z'",
            "step 'b' compensation references unknown step 'x'",
            "step 'a' action: template ${bad}: unknown root 'bad' (expected input, steps or saga)",
        ]

    def test_checks_only_syntax_while_the_graph_is_broken(self) -> None:
        steps = [
            step("a", after=("b",), action=uses("elsewhere")),
            step("b", after=("a",), action=http(body="${oops")),
        ]
        [problem] = templates.reference_problems(steps)
        assert problem.startswith("step 'b' action: unterminated template")


# --- properties -----------------------------------------------------------------------------

# Plain text rarely contains "${"; a small alphabet makes dollars and braces common.
texts = st.text() | st.text(alphabet="${}a.")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children) | st.dictionaries(texts, children),
    max_leaves=10,
)
template_free = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | texts.filter(lambda s: "${" not in s),
    lambda children: st.lists(children) | st.dictionaries(texts, children),
    max_leaves=10,
)


@given(template_free)
def test_a_value_without_templates_renders_as_itself(value: Json) -> None:
    assert templates.render(value, context()) == value
    assert templates.references(value) == frozenset()


@given(texts)
def test_escaping_every_opening_renders_the_original_text(text: str) -> None:
    assert templates.render(text.replace("${", "$${"), context()) == text


@given(json_values, st.text(min_size=1).filter(lambda s: "${" not in s and not s.endswith("$")))
def test_a_referenced_value_keeps_its_type_alone_and_is_compact_json_in_text(
    value: Json, prefix: str
) -> None:
    ctx = context(input={"v": value})
    assert templates.render("${input.v}", ctx) == value
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    )
    assert templates.render(prefix + "${input.v}", ctx) == prefix + text

"""The CRDs: generated from the models without drift, structural, and as strict as the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field, ValidationError

from sagaz_operator.api import crdgen
from sagaz_operator.api.definition import SagaDefinitionSpec
from sagaz_operator.api.outboxworker import OutboxWorkerSpec
from sagaz_operator.api.saga import SagaSpec, SagaStatus

REPO_ROOT = Path(__file__).resolve().parents[3]

ORDER_PROCESSING = """
failureStrategy: FailFast
timeoutSeconds: 600
defaults:
  timeoutSeconds: 30
  retry: {maxAttempts: 3, backoff: {initialSeconds: 1, factor: 2, maxSeconds: 60}}
compensationRetry: {maxAttempts: 10, backoff: {initialSeconds: 1, factor: 2, maxSeconds: 300}}
inputSchema: {}
steps:
  - name: reserve-inventory
    kind: Compensatable
    dependsOn: []
    timeoutSeconds: 10
    retry: {maxAttempts: 5}
    action:
      http:
        url: http://inventory.shop.svc/reserve
        method: POST
        headers: {X-Tenant: acme}
        headersFrom:
          - {name: Authorization, secretKeyRef: {name: inventory-token, key: token}}
        body: {orderId: "${input.orderId}", items: "${input.items}"}
    compensation:
      http:
        url: http://inventory.shop.svc/release
        body: {reservationId: "${steps.reserve-inventory.output.reservationId}"}
  - name: ship
    dependsOn: [reserve-inventory]
    action:
      job:
        template:
          spec: {containers: [{name: ship, image: shop/shipper:1.2}], restartPolicy: Never}
        backoffLimit: 0
        activeDeadlineSeconds: 300
"""


def example() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(ORDER_PROCESSING)
    return spec


def schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in crdgen.RESOURCES:
        yield (
            resource.kind,
            crdgen.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        )


def walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


class TestGeneratedFiles:
    def test_committed_crds_match_the_models(self) -> None:
        diff = crdgen.drift(REPO_ROOT / "crds")

        assert not diff, "crds/ drifted from the models; run `make crds`:\n" + "".join(diff)

    def test_check_mode_reports_drift(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert crdgen.main([str(tmp_path)]) == 0
        assert crdgen.main(["--check", str(tmp_path)]) == 0
        stale = tmp_path / "sagaz.io_sagas.yaml"
        stale.write_text(stale.read_text().replace("Progress", "Advance"))

        assert crdgen.main(["--check", str(tmp_path)]) == 1
        assert "+      name: Progress" in capsys.readouterr().out

    def test_one_file_per_crd(self) -> None:
        assert sorted(crdgen.render()) == [
            "sagaz.io_outboxworkers.yaml",
            "sagaz.io_sagadefinitions.yaml",
            "sagaz.io_sagas.yaml",
        ]


class TestStructuralSchema:
    @pytest.mark.parametrize(("kind", "schema"), list(schemas()))
    def test_has_no_json_schema_constructs(self, kind: str, schema: dict[str, Any]) -> None:
        forbidden = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const"}
        for path, node in walk(schema, kind):
            assert not forbidden & node.keys(), path
            assert node.get("additionalProperties") is not False, path
            assert node.get("default", "omitted") is not None, path

    @pytest.mark.parametrize(("kind", "schema"), list(schemas()))
    def test_every_field_is_typed_and_described(self, kind: str, schema: dict[str, Any]) -> None:
        for path, node in walk(schema, kind):
            if path.endswith((".metadata", "{}")):
                continue
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
            assert node.get("description"), path

    @pytest.mark.parametrize(
        "path",
        [
            "Saga.spec.input",
            "Saga.status.steps[].output",
            "SagaDefinition.spec.inputSchema",
            "SagaDefinition.spec.steps[].action.http.body",
            "SagaDefinition.spec.steps[].action.job.template",
            "OutboxWorker.spec.resources",
        ],
    )
    def test_free_form_json_is_preserved(self, path: str) -> None:
        nodes = {p: node for kind, schema in schemas() for p, node in walk(schema, kind)}

        assert nodes[path]["x-kubernetes-preserve-unknown-fields"] is True
        assert "properties" not in nodes[path]

    @pytest.mark.parametrize("resource", crdgen.RESOURCES, ids=lambda r: r.kind)
    def test_printer_columns_point_at_declared_fields(self, resource: crdgen.Resource) -> None:
        schema = dict(schemas())[resource.kind]
        for column in resource.columns:
            if column.json_path.startswith(".metadata."):
                continue
            node: dict[str, Any] = schema
            for part in column.json_path.split("[")[0].strip(".").split("."):
                node = node["properties"][part]
            expected = "array" if "[" in column.json_path else column.type

            assert node["type"] == expected, column.name

    def test_optional_fields_are_not_nullable_but_free_form_json_is(self) -> None:
        spec = crdgen.structural(SagaDefinitionSpec)
        step = spec["properties"]["steps"]["items"]

        assert step["properties"]["timeoutSeconds"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": 604800,
            "description": "Deadline of one attempt. Default spec.defaults.timeoutSeconds.",
        }
        assert step["properties"]["action"]["properties"]["http"]["properties"]["body"]["nullable"]

    def test_unions_are_refused(self) -> None:
        class Union(BaseModel):
            value: int | str

        with pytest.raises(crdgen.SchemaError, match="union"):
            crdgen.structural(Union)

    def test_exclusive_bounds_use_the_openapi_v3_form(self) -> None:
        class Exclusive(BaseModel):
            value: float = Field(gt=0, lt=1, description="between")

        assert crdgen.structural(Exclusive)["properties"]["value"] == {
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": 1,
            "exclusiveMaximum": True,
            "description": "between",
        }


class TestModels:
    def test_the_design_example_parses(self) -> None:
        spec = SagaDefinitionSpec.model_validate(example())

        assert [step.name for step in spec.steps] == ["reserve-inventory", "ship"]
        http = spec.steps[0].action.http
        assert http is not None
        assert http.headers_from is not None
        assert http.headers_from[0].secret_key_ref.key == "token"
        assert spec.steps[1].action.job is not None
        assert spec.steps[1].depends_on == ("reserve-inventory",)

    def test_round_trips_through_camel_case(self) -> None:
        spec = SagaDefinitionSpec.model_validate(example())
        dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)

        assert SagaDefinitionSpec.model_validate(dumped) == spec
        assert dumped["steps"][0]["dependsOn"] == []

    @pytest.mark.parametrize(
        ("change", "error"),
        [
            pytest.param(lambda s: s["steps"][0].update(name="Reserve"), "pattern", id="name"),
            pytest.param(lambda s: s["steps"][0].update(name="a" * 64), "at most 63", id="long"),
            pytest.param(
                lambda s: s["steps"][0]["retry"].update(maxAttempts=0), "greater", id="attempts"
            ),
            pytest.param(
                lambda s: s["steps"][0]["action"].update(s["steps"][1]["action"]),
                "exactly one of http or job",
                id="http-and-job",
            ),
            pytest.param(
                lambda s: s["steps"][0].update(action={}), "exactly one of http or job", id="none"
            ),
            pytest.param(lambda s: s.update(retries=3), "Extra inputs", id="unknown-field"),
            pytest.param(
                lambda s: s["steps"][1].update(name="reserve-inventory"), "unique", id="duplicate"
            ),
            pytest.param(lambda s: s.update(steps=[]), "at least 1", id="no-steps"),
            pytest.param(lambda s: s.update(gracePeriodSeconds=5), "FailFastWithGrace", id="grace"),
            pytest.param(lambda s: s.update(failureStrategy="Never"), "FailFast", id="strategy"),
            pytest.param(lambda s: s.update(timeoutSeconds=0), "greater", id="timeout"),
            pytest.param(lambda s: s.update(timeoutSeconds=10**7), "less", id="timeout-max"),
        ],
    )
    def test_invalid_definitions_are_rejected(self, change: Any, error: str) -> None:
        spec = example()
        change(spec)

        with pytest.raises(ValidationError, match=error):
            SagaDefinitionSpec.model_validate(spec)

    def test_grace_period_with_its_strategy(self) -> None:
        spec = {**example(), "failureStrategy": "FailFastWithGrace", "gracePeriodSeconds": 5}

        assert SagaDefinitionSpec.model_validate(spec).grace_period_seconds == 5

    @pytest.mark.parametrize(
        "spec",
        [
            pytest.param({}, id="neither"),
            pytest.param(
                {"definitionRef": {"name": "d"}, "definition": yaml.safe_load(ORDER_PROCESSING)},
                id="both",
            ),
        ],
    )
    def test_a_saga_needs_exactly_one_definition(self, spec: dict[str, Any]) -> None:
        with pytest.raises(ValidationError, match=r"exactly one of spec\.definitionRef"):
            SagaSpec.model_validate(spec)

    def test_a_saga_with_an_inline_definition(self) -> None:
        saga = SagaSpec.model_validate({"definition": example(), "input": {"orderId": "1"}})

        assert saga.definition is not None
        assert (saga.suspend, saga.abort, saga.input) == (False, False, {"orderId": "1"})

    def test_saga_status_round_trips(self) -> None:
        status = {
            "phase": "Running",
            "progress": "1/2",
            "currentStep": "ship",
            "startedAt": "2024-05-01T10:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}],
            "steps": [{"name": "reserve-inventory", "phase": "Succeeded", "output": {"id": 7}}],
        }
        parsed = SagaStatus.model_validate(status)

        assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == status

    def test_outbox_worker_defaults_and_bounds(self) -> None:
        body = {
            "database": {"urlSecretRef": {"name": "db", "key": "url"}},
            "kafka": {"bootstrapServers": "kafka:9092"},
        }
        spec = OutboxWorkerSpec.model_validate(body)

        assert (spec.database.table, spec.kafka.topic, spec.partitions) == (
            "sagaz_outbox",
            "saga-events",
            16,
        )
        with pytest.raises(ValidationError, match="minReplicas must not exceed"):
            OutboxWorkerSpec.model_validate(
                {**body, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}
            )
        with pytest.raises(ValidationError, match="pattern"):
            OutboxWorkerSpec.model_validate(
                {**body, "database": {**body["database"], "table": "x; drop table y"}}
            )

"""A Saga's ``spec.input`` checked against its definition's ``inputSchema`` (JSON Schema)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from sagaz_operator.domain.model import Json


def problems(schema: Mapping[str, Any] | None, value: Json) -> list[str]:
    """Every way ``value`` violates ``schema``, as ``spec.input.<path>: <message>``."""
    if not schema:
        return []
    schema = dict(schema)
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as invalid:
        return [f"inputSchema is not a valid JSON Schema: {invalid.message}"]
    validator = validator_class(schema)
    found = []
    for problem in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path))):
        where = "spec.input" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem.path
        )
        found.append(f"{where}: {problem.message}")
    return found

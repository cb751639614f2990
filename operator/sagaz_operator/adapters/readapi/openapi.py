"""The read API's OpenAPI 3.1 document, served at ``/api/openapi.json``.

Written by hand next to the routes (``server.py``) and checked against them by a test: the
API is small, and a generator would be a dependency for seven paths.
"""

from __future__ import annotations

from typing import Any

_NAMESPACE: dict[str, Any] = {
    "name": "namespace",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_NAME: dict[str, Any] = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}
_UID: dict[str, Any] = {
    "name": "uid",
    "in": "query",
    "description": "One saga of that name, if it was deleted and created again"
    " (default: the newest).",
    "schema": {"type": "string", "format": "uuid"},
}
_LIMIT: dict[str, Any] = {
    "name": "limit",
    "in": "query",
    "description": "Items per page (1-500, default 100).",
    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
}
_CONTINUE: dict[str, Any] = {
    "name": "continue",
    "in": "query",
    "description": "The `continue` token of the previous page.",
    "schema": {"type": "string"},
}
_FILTERS: list[dict[str, Any]] = [
    {"name": "phase", "in": "query", "schema": {"type": "string"}, "description": "e.g. Running"},
    {
        "name": "definition",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Its SagaDefinition's name.",
    },
    {
        "name": "allRuns",
        "in": "query",
        "schema": {"type": "boolean", "default": False},
        "description": "Also earlier runs of a name (deleted, then created again); default: "
        "the newest run of each name only.",
    },
]
_ERRORS = {
    "400": {
        "description": "Bad parameters",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    },
    "404": {
        "description": "No such saga in the journal",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    },
    "503": {
        "description": "The database is unavailable",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    },
}


def _get(summary: str, schema: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
                    },
                },
                **_ERRORS,
            },
        }
    }


_SAGA = "/api/v1/namespaces/{namespace}/sagas/{name}"
_ONE: list[dict[str, Any]] = [_NAMESPACE, _NAME, _UID]
_PAGE = {
    "continue": {
        "type": ["string", "null"],
        "description": "Token of the next page; null on the last.",
    }
}
_TIME = {"type": ["string", "null"], "format": "date-time"}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Sagaz Operator read API",
        "version": "v1",
        "description": "Read-only: sagas, their journal, definition snapshot and outbox rows, from "
        "PostgreSQL. Changes go through the Saga object (spec.suspend, spec.abort, spec.retry). "
        "No secret values are ever stored, so none can be served.",
    },
    "paths": {
        "/api/v1/sagas": _get(
            "List sagas",
            "SagaList",
            [
                {"name": "namespace", "in": "query", "schema": {"type": "string"}},
                *_FILTERS,
                _LIMIT,
                _CONTINUE,
            ],
        ),
        "/api/v1/namespaces/{namespace}/sagas": _get(
            "List the sagas of a namespace", "SagaList", [_NAMESPACE, *_FILTERS, _LIMIT, _CONTINUE]
        ),
        _SAGA: _get("One saga and its status, recomputed from the journal", "Saga", _ONE),
        _SAGA + "/history": _get(
            "The saga's journal, in order", "History", [*_ONE, _LIMIT, _CONTINUE]
        ),
        _SAGA + "/definition": _get(
            "The definition snapshotted when the saga started", "DefinitionSnapshot", _ONE
        ),
        _SAGA + "/outbox": _get(
            "The outbox rows of the saga's events, in order", "Outbox", [*_ONE, _LIMIT, _CONTINUE]
        ),
        "/api/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}
        },
    },
    "components": {
        "schemas": {
            "Problem": {
                "type": "object",
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
            },
            "SagaSummary": {
                "type": "object",
                "properties": {
                    "uid": {"type": "string", "format": "uuid"},
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                    "definition": {
                        "type": "object",
                        "properties": {
                            "name": {"type": ["string", "null"]},
                            "generation": {"type": "integer"},
                        },
                    },
                    "phase": {"type": "string"},
                    "journalLength": {"type": "integer"},
                    "progress": {
                        "type": ["string", "null"],
                        "description": "Succeeded steps out of all, e.g. 3/5 (lists only).",
                    },
                    "startedAt": _TIME,
                    "createdAt": _TIME,
                    "updatedAt": _TIME,
                    "finishedAt": _TIME,
                },
            },
            "SagaList": {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/SagaSummary"},
                    },
                    **_PAGE,
                },
            },
            "Saga": {
                "allOf": [
                    {"$ref": "#/components/schemas/SagaSummary"},
                    {
                        "type": "object",
                        "properties": {
                            "status": {
                                "type": "object",
                                "description": "As the Saga's .status (phase, progress, steps...).",
                            }
                        },
                    },
                ]
            },
            "History": {
                "type": "object",
                "properties": {
                    "uid": {"type": "string"},
                    "version": {"type": "integer"},
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "seq": {"type": "integer"},
                                "recordedAt": _TIME,
                                "type": {"type": "string", "description": "e.g. StepDispatched"},
                                "event": {
                                    "type": "object",
                                    "description": "The event's fields"
                                    " (at, step, attempt, error...).",
                                },
                            },
                        },
                    },
                    **_PAGE,
                },
            },
            "DefinitionSnapshot": {
                "type": "object",
                "properties": {
                    "uid": {"type": "string"},
                    "name": {"type": ["string", "null"]},
                    "generation": {"type": "integer"},
                    "spec": {"type": "object", "description": "A SagaDefinition spec."},
                },
            },
            "Outbox": {
                "type": "object",
                "properties": {
                    "uid": {"type": "string"},
                    "version": {"type": "integer"},
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "seq": {"type": "integer"},
                                "id": {"type": "string"},
                                "eventType": {"type": "string"},
                                "status": {"enum": ["pending", "published", "dead"]},
                                "attempts": {"type": "integer"},
                                "lastError": {"type": ["string", "null"]},
                                "createdAt": _TIME,
                                "publishedAt": _TIME,
                            },
                        },
                    },
                    **_PAGE,
                },
            },
        }
    },
}

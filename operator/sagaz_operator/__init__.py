"""Sagaz Operator: distributed sagas as Kubernetes custom resources.

The package is layered; each layer imports only the ones below it (checked by import-linter):

    cli        console entry points
    handlers/  Kopf registrations: parse a body, call a service, nothing else
    services/  orchestration: the saga executor, the outbox relay, reconcilers
    adapters/  all I/O: PostgreSQL, Kafka, HTTP participants, the Kubernetes API
    domain/    pure decisions: models, DAG planning, retry math, templates; no I/O, no clock
    api/       pydantic models of the custom resources and the CRD generator
"""

__version__ = "0.1.0"

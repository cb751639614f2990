"""Kopf registrations. Thin on purpose: parse the body, call a service, report.

Importing this package registers every handler with Kopf's default registry.
"""

from sagaz_operator.handlers import outboxworkers, sagas, startup

__all__ = ["outboxworkers", "sagas", "startup"]

"""Kopf's INFO line for every successful watch-handler call is dropped; everything else stays."""

from __future__ import annotations

import logging

from sagaz_operator.handlers import outboxworkers, sagas
from sagaz_operator.handlers.startup import QUIET_WATCH_HANDLERS, WATCH_HANDLERS


def line(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_the_watch_handlers_success_is_dropped_and_the_rest_kept() -> None:
    assert not QUIET_WATCH_HANDLERS.filter(line("Handler 'saga_changed' succeeded."))
    assert not QUIET_WATCH_HANDLERS.filter(line("Handler 'job_changed' succeeded."))
    assert QUIET_WATCH_HANDLERS.filter(line("Handler 'check_definition' succeeded."))
    failed = "Handler 'saga_changed' failed with an exception and will try again in 60 seconds"
    assert QUIET_WATCH_HANDLERS.filter(line(failed, logging.ERROR))
    assert QUIET_WATCH_HANDLERS.filter(line("Handler 'saga_changed' succeeded.", logging.WARNING))


def test_the_names_are_the_watch_handlers_kopf_calls() -> None:
    """Kopf names a handler by its function: a renamed handler would be logged again."""
    defined = {name for module in (sagas, outboxworkers) for name in dir(module)}
    assert set(WATCH_HANDLERS) <= defined

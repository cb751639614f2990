"""Kopf's per-event overhead for the watch-only kinds: its INFO line for every successful
watch-handler call is dropped (everything else stays), and no diff-base is built for them."""

from __future__ import annotations

import logging

import kopf

from sagaz_operator.handlers import outboxworkers, sagas
from sagaz_operator.handlers.startup import (
    QUIET_WATCH_HANDLERS,
    WATCH_HANDLERS,
    DiffBaseOfChangingKinds,
)


def line(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, None, None)


def test_the_watch_handlers_success_is_dropped_and_the_rest_kept() -> None:
    assert not QUIET_WATCH_HANDLERS.filter(line("Handler 'job_changed' succeeded."))
    assert not QUIET_WATCH_HANDLERS.filter(line("Handler 'child_changed' succeeded."))
    assert QUIET_WATCH_HANDLERS.filter(line("Handler 'reconcile' succeeded."))
    failed = "Handler 'job_changed' failed with an exception and will try again in 60 seconds"
    assert QUIET_WATCH_HANDLERS.filter(line(failed, logging.ERROR))
    assert QUIET_WATCH_HANDLERS.filter(line("Handler 'job_changed' succeeded.", logging.WARNING))


def test_the_names_are_the_watch_handlers_kopf_calls() -> None:
    """Kopf names a handler by its function: a renamed handler would be logged again."""
    defined = {name for module in (sagas, outboxworkers) for name in dir(module)}
    assert set(WATCH_HANDLERS) <= defined


def test_only_kinds_with_field_handlers_get_a_diff_base() -> None:
    storage = DiffBaseOfChangingKinds(prefix="sagaz.io", key="last-handled-configuration")

    def body(kind: str) -> kopf.Body:
        return kopf.Body({"kind": kind, "metadata": {"name": "x"}, "spec": {"a": 1}})

    assert storage.build(body=body("Job")) == {}
    assert storage.fetch(body=body("Job")) is None
    assert storage.build(body=body("OutboxWorker"))["spec"] == {"a": 1}

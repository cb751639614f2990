"""Operator-wide start-up and shutdown: Kopf settings and the shared adapters.

Kopf keeps its own bookkeeping (finalizers, progress, the last handled spec) in the objects it
serves; all of it is namespaced under our ``sagaz.io`` prefix so it is recognisably ours and
never collides with another Kopf operator in the same cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kopf

from sagaz_operator.services.runtime import Runtime

PREFIX = "sagaz.io"

#: The watch handlers, which Kopf calls for every event of every object they watch (each
#: change of a Job step's Job makes one): their success is the normal case, and Kopf's INFO
#: line for it ("Handler 'job_changed' succeeded.") was most of the operator's log and a few
#: per cent of its CPU. Their failures are still logged, and so are the other handlers'.
WATCH_HANDLERS = ("job_changed", "child_changed")


class QuietWatchHandlers(logging.Filter):
    """Drops Kopf's "succeeded" line of the watch handlers, unless debug logging is on."""

    _lines = frozenset(f"Handler {name!r} succeeded." for name in WATCH_HANDLERS)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.INFO or record.msg not in self._lines


QUIET_WATCH_HANDLERS = QuietWatchHandlers()

#: Kinds that only watch handlers serve: no field handler compares their versions.
WATCH_ONLY_KINDS = frozenset({"Job", "Deployment"})


class DiffBaseOfChangingKinds(kopf.AnnotationsDiffBaseStorage):
    """Kopf's diff-base, kept only for the kinds with field handlers (OutboxWorker).

    Kopf builds the diff-base of every object on every watch event (a deep copy of it) and
    reads the stored one, whether or not any handler will diff them; for Sagas, which change
    with every status write, that was a few per cent of the operator's CPU for nothing.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        if body.get("kind") in WATCH_ONLY_KINDS:
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if body.get("kind") in WATCH_ONLY_KINDS:
            return None
        return super().fetch(body=body)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = DiffBaseOfChangingKinds(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.peering.name = "sagaz-operator"
    settings.posting.level = logging.WARNING  # our own Events are richer than Kopf's INFO ones
    settings.watching.server_timeout = 300
    objects = logging.getLogger("kopf.objects")
    if not objects.isEnabledFor(logging.DEBUG):
        objects.addFilter(QUIET_WATCH_HANDLERS)  # the same filter once, however often started
    runtime: Runtime = memo["runtime"]
    await runtime.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    await runtime.close()

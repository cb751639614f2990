"""Operator-wide start-up and shutdown: Kopf settings and the shared adapters.

Kopf keeps its own bookkeeping (finalizers, progress, the last handled spec) in the objects it
serves; all of it is namespaced under our ``sagaz.io`` prefix so it is recognisably ours and
never collides with another Kopf operator in the same cluster.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from sagaz_operator.services.runtime import Runtime

PREFIX = "sagaz.io"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.peering.name = "sagaz-operator"
    settings.posting.level = logging.WARNING  # our own Events are richer than Kopf's INFO ones
    settings.watching.server_timeout = 300
    runtime: Runtime = memo["runtime"]
    await runtime.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    await runtime.close()

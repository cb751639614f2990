"""Operator-wide Kopf settings, applied once at start-up.

Kopf keeps its own bookkeeping (finalizers, progress, the last handled spec) in the objects it
serves; all of it is namespaced under our ``sagaz.io`` prefix so it is recognisably ours and
never collides with another Kopf operator in the same cluster.
"""

from __future__ import annotations

from typing import Any

import kopf

PREFIX = "sagaz.io"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.peering.name = "sagaz-operator"
    settings.posting.level = 20  # INFO and above become Kubernetes Events
    settings.watching.server_timeout = 300

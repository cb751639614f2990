"""Checks a SagaDefinition and reports the verdict in its ``Ready`` condition.

Sagas do not depend on this verdict (they check their definition again when they start,
from the same code); it is there so ``kubectl get sd`` shows a broken definition at once,
with a message naming the problem: a cycle ``a -> b -> a``, an unknown dependency...

The definitions come from the operator's own watch of them (``services.informer``, as the
Sagas do), not from Kopf: a check the API server refused (a CRD just installed answers 429
for a moment) is tried again within seconds, where Kopf waited a minute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from sagaz_operator.adapters.kube import Kube, KubeError, ObjectRef
from sagaz_operator.domain import conditions, definitions, storable
from sagaz_operator.errors import DefinitionError
from sagaz_operator.services.executor import Clock

logger = logging.getLogger(__name__)

#: Pauses after a refused status write: doubled from the first to the last, then kept.
RETRY_SECONDS = (0.5, 5.0)


class DefinitionChecks:
    """An ``informer.Observer`` of SagaDefinitions that checks each one when this process
    first sees it (a newer operator may judge it differently) and whenever its generation
    changes (its spec was edited). The check's own status write comes back as an event of
    the same generation and is not checked again; a newer generation cancels an older
    generation's check that is still being tried."""

    def __init__(
        self, kube: Kube, *, clock: Clock, retry: tuple[float, float] = RETRY_SECONDS
    ) -> None:
        self._kube, self._clock, self._retry = kube, clock, retry
        self._checked: dict[str, int] = {}  # uid -> the generation checked (or being checked)
        self._running: dict[str, asyncio.Task[None]] = {}

    def observe(self, kind: str | None, body: Mapping[str, Any]) -> None:
        uid = str((body.get("metadata") or {}).get("uid") or "")
        if kind == "DELETED":
            self._checked.pop(uid, None)
            self._cancel(uid)
            return
        generation = int(body["metadata"].get("generation", 1))
        if self._checked.get(uid) == generation:
            return
        self._checked[uid] = generation
        self._cancel(uid)
        name = f"check {body['metadata'].get('namespace')}/{body['metadata'].get('name')}"
        self._running[uid] = asyncio.create_task(self._check(uid, body), name=name)

    async def _check(self, uid: str, body: Mapping[str, Any]) -> None:
        pause = self._retry[0]
        try:
            while True:
                try:
                    await check(self._kube, body, clock=self._clock)
                    return
                except KubeError as error:
                    meta = body["metadata"]
                    logger.warning(
                        "SagaDefinition %s/%s: its status could not be written: %s; again in %gs",
                        meta.get("namespace"),
                        meta.get("name"),
                        error,
                        pause,
                    )
                except Exception:  # a bug: said once, and the other definitions go on
                    logger.exception("SagaDefinition %s could not be checked", uid)
                    return
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._retry[1])
        finally:
            if self._running.get(uid) is asyncio.current_task():
                del self._running[uid]

    def _cancel(self, uid: str) -> None:
        task = self._running.pop(uid, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def check(kube: Kube, body: Mapping[str, Any], *, clock: Clock) -> None:
    """Validate the SagaDefinition in ``body`` and write its status (an Event when invalid)."""
    meta = body["metadata"]
    spec = body.get("spec") or {}
    try:
        unstorable = storable.problem(spec, path="spec")
        if unstorable is not None:  # no saga could journal it: say so now, not at each start
            raise DefinitionError(f"cannot be stored: {unstorable}")
        definition = definitions.load(spec)
        ready, reason, message = True, "Valid", f"{len(definition.steps)} steps"
        steps = len(definition.steps)
    except DefinitionError as error:
        ready, reason, message = False, "Invalid", storable.text(str(error), limit=1024)
        steps = len(spec.get("steps") or [])
    generation = int(meta.get("generation", 1))
    status = {
        "observedGeneration": generation,
        "stepCount": steps,
        "conditions": conditions.upsert(
            (body.get("status") or {}).get("conditions") or [],
            type="Ready",
            status=ready,
            reason=reason,
            message=message,
            generation=generation,
            now=clock(),
        ),
    }
    ref = ObjectRef(
        kind="SagaDefinition",
        plural="sagadefinitions",
        namespace=meta["namespace"],
        name=meta["name"],
        uid=meta["uid"],
    )
    await kube.patch_status(ref, status)
    if not ready:
        await kube.post_event(ref, reason="InvalidDefinition", message=message, warning=True)

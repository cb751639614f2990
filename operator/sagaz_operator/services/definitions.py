"""Checks a SagaDefinition and reports the verdict in its ``Ready`` condition.

Sagas do not depend on this verdict (they check their definition again when they start,
from the same code); it is there so ``kubectl get sd`` shows a broken definition at once,
with a message naming the problem: a cycle ``a -> b -> a``, an unknown dependency...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagaz_operator.adapters.kube import Kube, ObjectRef
from sagaz_operator.domain import conditions, definitions, storable
from sagaz_operator.errors import DefinitionError
from sagaz_operator.services.executor import Clock


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

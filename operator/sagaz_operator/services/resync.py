"""The resync: every saga's status converges on the journal, whatever was lost on the way.

Retries (the reporter's flusher, the status outbox) cover an API server that is away for a
while. They cannot cover a write lost for good: the operator crashed with a write still
pending, an API server that was frozen woke up and applied a stale write after a newer one
(a request that timed out on our side is still executed on its side), or someone edited
``.status`` by hand. So at start-up and every ``interval`` seconds the operator compares, for
every saga, the phase the API server shows with the phase the journal has, and rewrites from
the journal the status of those that disagree (``domain.convergence`` decides which).

Cheap at 10,000 sagas: one paginated LIST in Table form — each row is the printer columns
(``Phase`` is ``.status.phase``) and the metadata, a few hundred bytes, not the whole object
with its steps —, one SQL query for the journaled phases of the listed uids, a comparison in
memory. Only a saga that disagrees costs more (its journal is read and projected, its status
patched, and if it has finished its terminal Event ensured), at most ``max_repairs`` a round.

It lists the namespaces the operator serves (``services.informer.saga_paths``, as its watch
of the Sagas does), not the cluster: another operator's sagas are another's to repair.

With several replicas each repairs only the sagas it owns (``owns``, from
``services.membership``): the LIST is still every saga, but the SQL query, the comparison and
the repairs are one replica's share, so the work is divided, not multiplied.

Never a regression: the journal is read after the LIST, so it is at least as new as the
listed status; the patch carries the listed ``resourceVersion``, so if anything wrote the
saga in between (its executor moving on) that write wins, the repair is refused (409) and the
next round looks again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sagaz_operator import metrics
from sagaz_operator.adapters.kube import ObjectRef
from sagaz_operator.adapters.postgres.journal import SagaRecord, Stored
from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.api.saga import SagaPhase
from sagaz_operator.domain import convergence, definitions, projection, state
from sagaz_operator.domain.convergence import JournaledSaga, ListedSaga
from sagaz_operator.domain.model import Definition, SagaUid
from sagaz_operator.domain.namespaces import Served
from sagaz_operator.errors import DefinitionError, SagazError
from sagaz_operator.services.executor import Clock
from sagaz_operator.services.informer import EVERYWHERE, saga_paths
from sagaz_operator.services.reporting import terminal_notice
from sagaz_operator.services.statuses import Sleep, StatusOutbox, StatusPort

logger = logging.getLogger(__name__)

#: Every Saga in the cluster: what an operator serving the whole cluster lists.
SAGAS = "/apis/" + API_VERSION + "/sagas"


class SagaLister(StatusPort, Protocol):
    def list_table(self, path: str, *, page: int = 500) -> AsyncIterator[dict[str, Any]]: ...


class Phases(Protocol):
    async def phases(self, uids: Sequence[str]) -> Mapping[str, JournaledSaga]: ...


class History(Protocol):
    def load(self, uid: str) -> Awaitable[Stored | None]: ...


@dataclass(frozen=True, kw_only=True)
class Round:
    """What one resync saw and did."""

    listed: int
    journaled: int
    stale: int
    repaired: int


class Resync:
    def __init__(
        self,
        *,
        kube: SagaLister,
        phases: Phases,
        history: History,
        outbox: StatusOutbox,
        clock: Clock,
        settle_seconds: float = 5.0,
        max_repairs: int = 200,
        owns: Callable[[str], bool] = lambda uid: True,
        served: Served = EVERYWHERE,
    ) -> None:
        self._owns = owns
        self._paths = saga_paths(served)
        self._served = served
        self._kube = kube
        self._phases = phases
        self._history = history
        self._outbox = outbox
        self._clock = clock
        self._settle = settle_seconds
        self._max_repairs = max_repairs

    async def run_forever(self, *, interval: float, sleep: Sleep = asyncio.sleep) -> None:
        """A round now and one every ``interval`` seconds; a failed round is logged, never
        fatal (the API server or the database may be away: the next round tries again)."""
        while True:
            try:
                done = await self.once()
            except Exception as error:  # a background repair must outlive any one failure
                logger.warning("status resync failed: %s: %s", type(error).__name__, error)
            else:
                if done.stale:
                    logger.info(
                        "status resync: %d sagas listed, %d journaled here, %d disagreed, "
                        "%d repaired",
                        done.listed,
                        done.journaled,
                        done.stale,
                        done.repaired,
                    )
            await sleep(interval)

    async def once(self) -> Round:
        listed = [
            saga
            for path in self._paths
            async for saga in (_listed(row) async for row in self._kube.list_table(path))
            if self._served.includes(saga.namespace) and self._owns(saga.uid)
        ]
        journaled = await self._phases.phases([saga.uid for saga in listed])
        _count_phases(journaled)
        stale = convergence.out_of_date(
            listed, journaled, settle_seconds=self._settle, limit=self._max_repairs
        )
        repaired = 0
        for saga in stale:
            repaired += await self._repair(saga)
        return Round(
            listed=len(listed), journaled=len(journaled), stale=len(stale), repaired=repaired
        )

    async def _repair(self, saga: ListedSaga) -> bool:
        stored = await self._history.load(saga.uid)
        if stored is None:
            return False
        current = state.replay(
            state.initial(uid=SagaUid(saga.uid), definition=_definition(stored.record)),
            stored.journal,
        )
        status = projection.status(
            current,
            now=self._clock(),
            definition_name=stored.record.definition_name,
            definition_generation=stored.record.definition_generation,
        )
        status["observedGeneration"] = saga.generation
        ref = ObjectRef(
            kind="Saga", plural="sagas", namespace=saga.namespace, name=saga.name, uid=saga.uid
        )
        try:
            await self._kube.patch_status(ref, status, resource_version=saga.resource_version)
        except SagazError as error:  # changed meanwhile (409), or the API server is away
            logger.info("saga %s/%s: status not repaired: %s", saga.namespace, saga.name, error)
            return False
        metrics.status_repairs.inc()
        logger.warning(
            "saga %s/%s: its status said %r, the journal %r: rewritten from the journal",
            saga.namespace,
            saga.name,
            saga.phase,
            current.phase.value,
        )
        if current.finished:
            # Its terminal Event may have been lost with the status; the fixed name makes
            # this a no-op if it was not.
            notices = (terminal_notice(event) for event in reversed(stored.journal))
            self._outbox.submit(ref, status=None, notice=next(filter(None, notices), None))
        return True


def _count_phases(journaled: Mapping[str, JournaledSaga]) -> None:
    """``sagaz_sagas_by_phase``: every phase, 0 included, so a phase's first saga is a
    change an alert sees (a series born at 1 has no increase)."""
    counts = Counter(saga.phase for saga in journaled.values())
    for phase in SagaPhase:
        metrics.sagas_by_phase.labels(phase.value).set(counts.get(phase.value, 0))


def _listed(row: Mapping[str, Any]) -> ListedSaga:
    meta = row["object"]["metadata"]
    return ListedSaga(
        uid=str(meta["uid"]),
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        resource_version=str(meta["resourceVersion"]),
        generation=int(meta.get("generation", 1)),
        phase=str(row["cells"].get("Phase") or ""),
    )


def _definition(record: SagaRecord) -> Definition:
    """The definition the saga started with, as its executor rebuilds it (none if rejected)."""
    if record.definition:
        try:
            return definitions.load(record.definition)
        except DefinitionError:
            pass
    return Definition(steps=())

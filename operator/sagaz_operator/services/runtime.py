"""Builds (and tears down) the adapters the operator shares across all sagas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from sagaz_operator import metrics
from sagaz_operator.adapters import participants
from sagaz_operator.adapters.jobs import JobParticipants
from sagaz_operator.adapters.kube import Kube
from sagaz_operator.adapters.metrics_api import server as metrics_api
from sagaz_operator.adapters.metrics_api import trust
from sagaz_operator.adapters.postgres import migrations
from sagaz_operator.adapters.postgres.errors import DatabaseUnavailableError
from sagaz_operator.adapters.postgres.journal import Journal
from sagaz_operator.adapters.postgres.locks import SagaLocks
from sagaz_operator.adapters.postgres.phases import JournalPhases
from sagaz_operator.adapters.readapi.server import ApiServer
from sagaz_operator.api.definition import API_VERSION
from sagaz_operator.config import ExternalMetricsSettings, Settings
from sagaz_operator.domain.namespaces import Served
from sagaz_operator.errors import ConfigError
from sagaz_operator.services import external_metrics, informer, tracing
from sagaz_operator.services.definition_cache import DefinitionCache
from sagaz_operator.services.definitions import DefinitionChecks
from sagaz_operator.services.intake import Intake
from sagaz_operator.services.membership import Membership, group_of
from sagaz_operator.services.outboxworkers import WorkerRuntime
from sagaz_operator.services.pacing import StatusBudget
from sagaz_operator.services.resync import Resync
from sagaz_operator.services.sagas import SagaRuntime
from sagaz_operator.services.statuses import StatusOutbox
from sagaz_operator.services.steps import StepRunner

logger = logging.getLogger(__name__)

#: At shutdown, how long final statuses still pending get to reach the API server.
OUTBOX_GRACE_SECONDS = 5.0

#: How often ``sagaz_database_up`` is refreshed: the SagazDatabaseUnavailable alert's input.
#: Sagas notice an outage only when they write; an idle operator would not notice at all.
DATABASE_PROBE_SECONDS = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


async def check_database(url: str) -> None:
    """Fail fast, with a clear message, when the database cannot be reached at start."""
    try:
        await migrations.check_reachable(url)
    except DatabaseUnavailableError as error:
        raise ConfigError(f"cannot reach the database at SAGAZ_DATABASE_URL: {error}") from error


async def check_external_metrics(settings: ExternalMetricsSettings) -> None:
    """Fail fast, with a clear message, when the external metrics API could not be served:
    its certificate or the front-proxy CA is unusable, or the API server publishes no CA."""
    kube = Kube.from_environment()
    try:
        trusted = await trust.load(
            kube, client_ca_file=settings.client_ca_file, allowed_names=settings.allowed_names
        )
        trust.server_context(
            cert_file=settings.cert_file, key_file=settings.key_file, client_ca=trusted.client_ca
        )
    finally:
        await kube.close()


async def migrate(url: str) -> list[str]:
    return await migrations.migrate_database(url)


async def probe_database(url: str, *, interval: float = DATABASE_PROBE_SECONDS) -> None:
    """Set ``sagaz_database_up`` from a fresh connection every ``interval``, forever."""
    reachable = True
    while True:
        try:
            await migrations.check_reachable(url)
        except DatabaseUnavailableError as error:
            if reachable:  # log the change, not every probe
                logger.warning("database unreachable: %s", error)
            reachable = False
        else:
            if not reachable:
                logger.info("database reachable again")
            reachable = True
        metrics.database_up.set(1 if reachable else 0)
        await asyncio.sleep(interval)


class Runtime:
    def __init__(self, settings: Settings, *, tracer: tracing.Tracer = tracing.NO_TRACING) -> None:
        self.settings = settings
        self.tracer = tracer
        self.served = Served(settings.scope)
        self._journal: Journal | None = None
        self._locks: SagaLocks | None = None
        self._http: participants.HttpParticipants | None = None
        self._kube: Kube | None = None
        self.sagas: SagaRuntime | None = None
        self.intake: Intake | None = None
        self.workers: WorkerRuntime | None = None
        self.jobs: JobParticipants | None = None
        self._outbox: StatusOutbox | None = None
        self._phases: JournalPhases | None = None
        self._resync: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self._api: ApiServer | None = None
        self._metrics_api: metrics_api.MetricsServer | None = None
        self.membership: Membership | None = None
        self._members: asyncio.Task[None] | None = None
        self._lease_kube: Kube | None = None
        self._watches: list[asyncio.Task[None]] = []
        self._checks: DefinitionChecks | None = None

    async def start(self) -> SagaRuntime:
        url = self.settings.database_url
        applied = await migrations.migrate_database(url)
        self._journal = await Journal.open(url)
        if applied:
            logger.info("database migrated: %s", ", ".join(applied))
        self._locks = SagaLocks(url)
        self._kube = Kube.from_environment()
        self._outbox = StatusOutbox(kube=self._kube)
        self._phases = await JournalPhases.open(url)
        # A client of its own, so renewals never queue behind a burst of status writes.
        self._lease_kube = Kube.from_environment()
        self.membership = membership = self._membership(self._lease_kube, self._locks)
        await membership.beat()  # join before the resync and the first watch events
        self._http = http = participants.HttpParticipants(
            client=participants.new_client(), egress=self.settings.egress, secrets=self._kube
        )
        self.jobs = JobParticipants(kube=self._kube, policy=self.settings.job_policy)
        self.sagas = SagaRuntime(
            kube=self._kube,
            journal=self._journal,
            locks=self._locks,
            runner=StepRunner(http=http, jobs=self.jobs),
            clock=utc_now,
            status_interval=self.settings.status_interval,
            status_budget=StatusBudget(self.settings.status_writes_per_second),
            outbox=self._outbox,
            tracer=self.tracer,
            definitions=DefinitionCache(),
        )
        resync = Resync(
            kube=self._kube,
            phases=self._phases,
            history=self._journal,
            outbox=self._outbox,
            clock=utc_now,
            owns=membership.owns,
            served=self.served,
        )
        self._resync = asyncio.create_task(
            resync.run_forever(interval=self.settings.resync_interval), name="status resync"
        )
        metrics.database_up.set(1)  # migrated just now
        self._probe = asyncio.create_task(probe_database(url), name="database probe")
        self.intake = intake = Intake(self.sagas, owns=membership.owns)
        metrics.owned_sagas.set_function(lambda: intake.running)
        membership.subscribe(intake.rebalance)
        self._members = asyncio.create_task(membership.run_forever(), name="membership")
        self._checks = DefinitionChecks(self._kube, clock=utc_now)
        self._watches = self._watch(self._kube, intake, self.sagas.definitions, self._checks)
        self.workers = WorkerRuntime(
            kube=self._kube, image=self.settings.worker_image, clock=utc_now
        )
        if self.settings.api_address is not None:
            host, port = self.settings.api_address
            self._api = await ApiServer.start(
                url, host=host, port=port, clock=utc_now, kube=self._kube
            )
        if self.settings.external_metrics is not None:
            self._metrics_api = await _serve_external_metrics(
                self.settings.external_metrics, self._kube
            )
        return self.sagas

    def _membership(self, kube: Kube, locks: SagaLocks) -> Membership:
        settings = self.settings
        renew = settings.lease_renew

        async def healthy() -> bool:  # the lock connection is the one the fence lives on
            return await locks.ping(within=renew)

        return Membership(
            leases=kube,
            namespace=settings.lease_namespace,
            group=group_of(settings.scope),
            identity=settings.replica_id,
            duration=settings.lease_duration,
            renew=renew,
            healthy=healthy,
            clock=utc_now,
        )

    def _watch(
        self, kube: Kube, intake: Intake, cache: DefinitionCache, checks: DefinitionChecks
    ) -> list[asyncio.Task[None]]:
        """The lists and watches (``services.informer``) of the served SagaDefinitions, into
        the sagas' cache of them and their checks, and of the served Sagas, into the intake."""
        prefix = f"/apis/{API_VERSION}"
        definitions = informer.fan_out(cache.observe, checks.observe)
        watched = [
            (path, "SagaDefinition", definitions)
            for path in informer.paths(prefix, "sagadefinitions", self.served)
        ] + [(path, "Saga", intake.observe) for path in informer.saga_paths(self.served)]
        return [
            asyncio.create_task(
                informer.Informer(
                    kube, path, observe, kind=kind, api_version=API_VERSION, served=self.served
                ).run_forever(),
                name=f"watch {path}",
            )
            for path, kind, observe in watched
        ]

    def owns(self, uid: str | None) -> bool:
        """Whether this replica does the per-object work of the object ``uid``: every object
        with one replica (no membership), its share by rendezvous hashing with several."""
        return bool(uid) and (self.membership is None or self.membership.owns(str(uid)))

    async def close(self) -> None:
        for watch in self._watches:  # no saga starts while the others stop
            watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._watches, return_exceptions=True)
        if self._checks is not None:
            await self._checks.close()
        if self._members is not None:  # others take this replica's sagas at once
            self._members.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._members
        if self.membership is not None:
            await self.membership.leave()
        if self.intake is not None:  # stops the executors; their final statuses go to the outbox
            await self.intake.stop()
        for task in (self._resync, self._probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._outbox is not None:
            await self._outbox.close(grace=OUTBOX_GRACE_SECONDS)
        await asyncio.to_thread(self.tracer.close)  # exports the spans still buffered
        if self._api is not None:
            await self._api.close()
        if self._metrics_api is not None:
            await self._metrics_api.close()
        if self._http is not None:
            await self._http.close()
        if self._kube is not None:
            await self._kube.close()
        if self._lease_kube is not None:
            await self._lease_kube.close()
        if self._locks is not None:
            await self._locks.close()
        if self._journal is not None:
            await self._journal.close()
        if self._phases is not None:
            await self._phases.close()


async def _serve_external_metrics(
    settings: ExternalMetricsSettings, kube: Kube
) -> metrics_api.MetricsServer:
    """The HPAs' metric, served for the aggregation layer (``adapters.metrics_api``)."""
    trusted = await trust.load(
        kube, client_ca_file=settings.client_ca_file, allowed_names=settings.allowed_names
    )
    tls = trust.server_context(
        cert_file=settings.cert_file, key_file=settings.key_file, client_ca=trusted.client_ca
    )

    async def pending(namespace: str, name: str) -> int:
        return await external_metrics.pending_events(kube, namespace, name)

    app = metrics_api.application(
        headers=trusted.headers,
        pending=pending,
        authorizer=trust.AccessReviews(kube) if settings.authorize else None,
        clock=utc_now,
    )
    host, port = settings.address
    return await metrics_api.MetricsServer.start(app, host=host, port=port, tls=tls)

"""Who the live operator replicas are, through one ``coordination.k8s.io/v1`` Lease each.

Every replica keeps a Lease of its own in the operator's namespace (``holderIdentity`` = its
replica id, ``renewTime``, ``leaseDurationSeconds``), renewed every ``renew`` seconds, and lists
the Leases of its group at the same pace: a member is live while its Lease has not expired.
``owns(uid)`` is then rendezvous hashing (``domain.rendezvous``) of the saga uid over the live
members, so replicas that see the same Leases agree on every saga's owner without talking.

The group is a label: replicas serving the same namespaces (the same ``--namespace`` set) are
one group, so a differently scoped operator in the same namespace never takes a share of
sagas it does not even watch.

Giving up before being given up: a replica acts (owns anything) only while its last renewal
is younger than ``duration - renew``, so one that cannot reach the API server stops its
executors a renew period before the others see its Lease expire and take over. One that
cannot reach the database (the lock connection does not answer) deletes its Lease and owns
nothing until the database answers again, so the others take its sagas at once instead of
waiting for it. Either way, a replica that saw no other live member at its last look keeps
its sagas (there is nobody to give them to: they wait for the database or the API server
here, as with a single replica). And the PostgreSQL advisory lock remains the fence: two
replicas that briefly disagree about an owner still cannot both run the saga.

Clock: expiry is judged on ``renewTime`` against this replica's wall clock, so the replicas'
clocks must agree to well within the lease duration (NTP does that).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sagaz_operator import metrics
from sagaz_operator.domain import rendezvous
from sagaz_operator.errors import SagazError
from sagaz_operator.services.executor import Clock

logger = logging.getLogger(__name__)

GROUP_LABEL = "sagaz.io/operator-group"
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


class LeaseStore(Protocol):
    """The few Kubernetes calls membership needs (``adapters.kube.Kube`` has them)."""

    async def apply(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete(self, path: str, *, propagation: str = "Background") -> None: ...

    async def list_labelled(self, path: str, selector: str) -> list[dict[str, Any]]: ...


def group_of(namespaces: Iterable[str]) -> str:
    """The group label of replicas serving ``namespaces`` (empty: the whole cluster)."""
    scope = ",".join(sorted(set(namespaces))) or "*"
    return "g" + hashlib.sha256(scope.encode()).hexdigest()[:12]


def lease_name(group: str, identity: str) -> str:
    """A Lease name for ``identity``: readable, and distinct even when slugs collide."""
    slug = _NOT_NAME.sub("-", identity.lower()).strip("-")[:40].strip("-") or "replica"
    return f"sagaz-{group}-{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:6]}"


def live_members(leases: Iterable[Mapping[str, Any]], *, now: datetime) -> set[str]:
    """The holders of the Leases that have not expired at ``now``."""
    live = set()
    for lease in leases:
        spec = lease.get("spec") or {}
        holder, renewed = spec.get("holderIdentity"), spec.get("renewTime")
        if not holder or not renewed:
            continue
        try:
            expiry = datetime.fromisoformat(str(renewed).replace("Z", "+00:00")) + timedelta(
                seconds=int(spec.get("leaseDurationSeconds") or 0)
            )
        except ValueError:
            continue
        if expiry > now:
            live.add(str(holder))
    return live


class Membership:
    def __init__(
        self,
        *,
        leases: LeaseStore,
        namespace: str,
        group: str,
        identity: str,
        duration: int,
        renew: float,
        healthy: Callable[[], Awaitable[bool]],
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew < duration:
            raise ValueError(f"the renew period ({renew}s) must be shorter than the lease")
        self.identity = identity
        self._leases = leases
        self._namespace = namespace
        self._group = group
        self._duration = duration
        self._renew = renew
        self._healthy = healthy
        self._clock = clock
        self._monotonic = monotonic
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._name = lease_name(group, identity)
        self._members: tuple[str, ...] = ()
        self._renewed_at: float | None = None  # monotonic time of the last renewal that landed
        self._acquired: str | None = None
        self._lapse: asyncio.TimerHandle | None = None
        self._listeners: list[Callable[[], None]] = []
        self._listed = False  # a list of the members has succeeded at least once
        self._seen: tuple[bool, bool, tuple[str, ...]] = (False, False, ())

    @property
    def members(self) -> tuple[str, ...]:
        """The live members last seen (this replica among them while it acts)."""
        if self.acting:
            return self._members
        return tuple(member for member in self._members if member != self.identity)

    @property
    def acting(self) -> bool:
        """Whether this replica may own sagas: its Lease was renewed recently enough."""
        renewed = self._renewed_at
        return renewed is not None and self._monotonic() - renewed < self._duration - self._renew

    @property
    def alone(self) -> bool:
        """No other live member at the last look: nobody could take this replica's sagas."""
        return self._listed and all(member == self.identity for member in self._members)

    def owns(self, uid: str) -> bool:
        if self.acting:
            return rendezvous.owner(uid, self._members) == self.identity
        return self.alone  # giving sagas up to nobody would only stall them

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever ownership may have changed (members, or acting)."""
        self._listeners.append(listener)

    async def run_forever(self) -> None:
        """Renew and look around every renew period until cancelled; failures are logged."""
        # A slow round is not fatal: acting lapses on its own timer, whatever a round does.
        patience = self._duration / 2
        while True:
            try:
                await asyncio.wait_for(self.beat(), timeout=patience)
            except TimeoutError:
                logger.warning("membership: a renewal took more than %gs", patience)
            await asyncio.sleep(self._renew)

    async def beat(self) -> None:
        """One round: renew (or, without the database, drop) the Lease, then list the members."""
        try:
            healthy = await self._healthy()
            if healthy:
                await self._renew_lease()
            elif self._renewed_at is not None or self._acquired is not None:
                logger.warning("membership: the database does not answer; giving up my sagas")
                self._renewed_at = None
                self._notify()
                await self._drop()
            leases = await self._leases.list_labelled(self._path, f"{GROUP_LABEL}={self._group}")
        except SagazError as error:  # the API server is away: keep acting until the lapse
            if getattr(error, "status", None) == 403:
                logger.error(
                    "membership: %s; this replica runs no saga until it may keep a Lease "
                    "(RBAC: get/list/create/update/patch/delete coordination.k8s.io leases in "
                    "namespace %s, as the chart grants)",
                    error,
                    self._namespace,
                )
            else:
                logger.warning("membership: %s", error)
            self._notify()
            return
        self._listed = True
        live = live_members(leases, now=self._clock())
        if self.acting:
            live.add(self.identity)
        else:
            live.discard(self.identity)
        self._members = tuple(sorted(live))
        self._notify()

    async def leave(self) -> None:
        """Stop owning anything and delete the Lease now, so the others take over at once."""
        self._renewed_at = None
        self._notify()
        with contextlib.suppress(SagazError):
            await self._drop()

    async def _renew_lease(self) -> None:
        started = self._monotonic()
        now = self._clock()
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._acquired = self._acquired or stamp
        await self._leases.apply(
            f"{self._path}/{self._name}",
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": self._name,
                    "namespace": self._namespace,
                    "labels": {GROUP_LABEL: self._group},
                },
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": self._duration,
                    "acquireTime": self._acquired,
                    "renewTime": stamp,
                },
            },
        )
        self._renewed_at = started
        if self._lapse is not None:
            self._lapse.cancel()
        # Without another renewal, stop acting exactly when acting lapses, not a round later.
        self._lapse = asyncio.get_running_loop().call_later(
            self._duration - self._renew + 0.05, self._notify
        )

    async def _drop(self) -> None:
        self._acquired = None
        await self._leases.delete(f"{self._path}/{self._name}")

    def _notify(self) -> None:
        seen = (self.acting, self.alone, self._members)
        if seen == self._seen:
            return
        if self._seen[0] and not seen[0] and not seen[1]:
            logger.warning("membership: %s stops acting; its sagas go to others", self.identity)
        else:
            logger.info("membership: members %s (this is %s)", ", ".join(seen[2]), self.identity)
        self._seen = seen
        metrics.members_seen.set(len(self.members))
        for listener in self._listeners:
            listener()

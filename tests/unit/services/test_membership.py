"""Membership through Leases, against an in-memory Lease store: who is live, who owns what,
and that a replica gives its sagas up when it cannot renew or cannot reach the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from harness import fakes
from sagaz_operator.services.membership import Membership, group_of, lease_name, live_members

UIDS = [str(uuid.UUID(int=i + 1)) for i in range(300)]
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Replica:
    def __init__(self, leases: fakes.Leases, identity: str, group: str = "g1") -> None:
        self.healthy = True
        self.time = 0.0
        self.changes = 0

        async def healthy() -> bool:
            return self.healthy

        self.membership = Membership(
            leases=leases,
            namespace="ops",
            group=group,
            identity=identity,
            duration=15,
            renew=5.0,
            healthy=healthy,
            clock=lambda: NOW + timedelta(seconds=self.time),
            monotonic=lambda: self.time,
        )
        self.membership.subscribe(self._changed)

    def _changed(self) -> None:
        self.changes += 1

    def owned(self) -> set[str]:
        return {uid for uid in UIDS if self.membership.owns(uid)}


async def test_replicas_that_see_the_same_leases_split_every_saga_exactly_once() -> None:
    leases = fakes.Leases()
    replicas = [Replica(leases, f"op-{i}") for i in range(3)]
    for _ in range(2):  # the first round of the first one sees only itself
        for replica in replicas:
            await replica.membership.beat()

    shares = [replica.owned() for replica in replicas]
    assert all(shares)
    assert set().union(*shares) == set(UIDS)
    assert sum(len(share) for share in shares) == len(UIDS)
    assert replicas[0].membership.members == ("op-0", "op-1", "op-2")


async def test_a_clean_leave_hands_its_sagas_to_the_others_at_their_next_round() -> None:
    leases = fakes.Leases()
    first, second = Replica(leases, "op-a"), Replica(leases, "op-b")
    for replica in (first, second, first):
        await replica.membership.beat()
    assert 0 < len(first.owned()) < len(UIDS)

    await second.membership.leave()
    await first.membership.beat()

    assert second.owned() == set()
    assert first.owned() == set(UIDS)
    assert len(leases.objects) == 1


async def test_a_replica_that_cannot_renew_stops_owning_before_its_lease_expires() -> None:
    leases = fakes.Leases()
    replica, other = Replica(leases, "op-a"), Replica(leases, "op-b")
    for member in (replica, other, replica):
        await member.membership.beat()
    share = replica.owned()
    assert 0 < len(share) < len(UIDS)

    leases.away = True
    replica.time = 9.9
    await replica.membership.beat()
    assert replica.owned() == share  # still within duration - renew
    replica.time = 10.0
    await replica.membership.beat()

    assert replica.owned() == set()
    assert replica.changes >= 2  # joined, then gave up


async def test_a_replica_alone_keeps_its_sagas_through_an_outage() -> None:
    leases = fakes.Leases()
    replica = Replica(leases, "op-a")
    await replica.membership.beat()

    leases.away = True
    replica.time = 30.0
    await replica.membership.beat()
    assert replica.owned() == set(UIDS)  # nobody could take them over

    leases.away = False
    replica.healthy = False
    await replica.membership.beat()
    assert replica.owned() == set(UIDS)
    assert leases.objects == {}  # its Lease is gone all the same


async def test_a_replica_without_the_database_drops_its_lease_and_rejoins_later() -> None:
    leases = fakes.Leases()
    first, second = Replica(leases, "op-a"), Replica(leases, "op-b")
    for replica in (first, second, first):
        await replica.membership.beat()

    second.healthy = False
    await second.membership.beat()
    await first.membership.beat()
    assert second.owned() == set()
    assert first.owned() == set(UIDS)

    second.healthy = True
    await second.membership.beat()
    await first.membership.beat()
    assert 0 < len(second.owned()) < len(UIDS)


async def test_an_expired_lease_is_not_a_member_and_other_groups_are_not_seen() -> None:
    leases = fakes.Leases()
    dead, other = Replica(leases, "op-dead"), Replica(leases, "op-other", group="g2")
    await dead.membership.beat()
    await other.membership.beat()
    alive = Replica(leases, "op-alive")
    alive.time = 15.1  # op-dead renewed at 0 for 15 s
    await alive.membership.beat()

    assert alive.membership.members == ("op-alive",)
    assert alive.owned() == set(UIDS)


def test_live_members_reads_renew_time_and_duration() -> None:
    lease = {"spec": {"holderIdentity": "x", "leaseDurationSeconds": 15}}
    lease["spec"]["renewTime"] = "2026-12-01T11:59:50.000000Z"
    assert live_members([lease], now=NOW) == {"x"}
    assert live_members([lease], now=NOW + timedelta(seconds=5)) == set()
    assert live_members([{"spec": {"holderIdentity": "y"}}], now=NOW) == set()


def test_groups_and_lease_names() -> None:
    assert group_of(["b", "a"]) == group_of(["a", "b"]) != group_of([])
    name = lease_name("g1", "Host.Example_1-42")
    assert name.startswith("sagaz-g1-host-example-1-42-")
    assert lease_name("g1", "a_b") != lease_name("g1", "a.b")


def test_the_renew_period_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError, match="renew"):
        Membership(
            leases=fakes.Leases(),
            namespace="ops",
            group="g",
            identity="a",
            duration=5,
            renew=5.0,
            healthy=lambda: None,  # type: ignore[arg-type,return-value]
            clock=lambda: NOW,
        )


async def test_a_replica_refused_its_lease_says_why_and_owns_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sagaz_operator.adapters.kube import ApiError

    class Forbidden(fakes.Leases):
        async def apply(self, path: str, body: Any) -> dict[str, Any]:
            raise ApiError(403, 'leases.coordination.k8s.io "x" is forbidden')

    replica = Replica(Forbidden(), "op-a")
    await replica.membership.beat()

    assert replica.owned() == set()
    assert "RBAC" in caplog.text

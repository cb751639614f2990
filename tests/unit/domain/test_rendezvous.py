"""Rendezvous hashing: agreement, even split, and minimal movement on membership change."""

from __future__ import annotations

import uuid
from collections import Counter

from sagaz_operator.domain.rendezvous import owner

UIDS = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(6000)]


def test_no_members_no_owner() -> None:
    assert owner(UIDS[0], []) is None


def test_the_owner_does_not_depend_on_the_order_members_are_seen_in() -> None:
    members = ["op-a", "op-b", "op-c"]
    for uid in UIDS[:200]:
        assert owner(uid, members) == owner(uid, reversed(members))


def test_many_sagas_split_evenly_over_three_members() -> None:
    split = Counter(owner(uid, ["op-a", "op-b", "op-c"]) for uid in UIDS)
    assert set(split) == {"op-a", "op-b", "op-c"}
    for share in split.values():
        assert abs(share / len(UIDS) - 1 / 3) < 0.03, split


def test_a_member_joining_takes_about_a_quarter_and_nothing_else_moves() -> None:
    before = {uid: owner(uid, ["op-a", "op-b", "op-c"]) for uid in UIDS}
    after = {uid: owner(uid, ["op-a", "op-b", "op-c", "op-d"]) for uid in UIDS}
    moved = [uid for uid in UIDS if before[uid] != after[uid]]
    assert all(after[uid] == "op-d" for uid in moved)
    assert abs(len(moved) / len(UIDS) - 1 / 4) < 0.03


def test_a_member_leaving_moves_only_its_own_sagas() -> None:
    before = {uid: owner(uid, ["op-a", "op-b", "op-c"]) for uid in UIDS}
    after = {uid: owner(uid, ["op-a", "op-c"]) for uid in UIDS}
    moved = [uid for uid in UIDS if before[uid] != after[uid]]
    assert {before[uid] for uid in moved} == {"op-b"}
    assert abs(len(moved) / len(UIDS) - 1 / 3) < 0.03
    assert Counter(after[uid] for uid in moved).most_common()[-1][1] > len(moved) / 3

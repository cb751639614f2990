"""Which live operator replica owns a saga: rendezvous (highest-random-weight) hashing.

Every replica scores every live member for a saga uid and the highest score wins::

    score(member, uid) = uint64_be(blake2b(utf8(member) || 0x00 || utf8(uid), 8 bytes))

so replicas that see the same members agree on the owner without talking to each other, and
when a member joins or leaves only the sagas it wins (or won) move: about ``1/n`` of them,
never a reshuffle of the rest. Ties (practically impossible) go to the smaller member id.
Pure: no I/O, no clock; ``services.membership`` decides who is live.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(member: str, uid: str) -> int:
    """The weight of ``member`` for ``uid`` (see the module docstring)."""
    digest = hashlib.blake2b(member.encode() + b"\0" + uid.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(uid: str, members: Iterable[str]) -> str | None:
    """The member that owns ``uid``, or None if there are no members."""
    best: str | None = None
    best_score = -1
    for member in members:
        weight = score(member, uid)
        if weight > best_score or (weight == best_score and best is not None and member < best):
            best, best_score = member, weight
    return best

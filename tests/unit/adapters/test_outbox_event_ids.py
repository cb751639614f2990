"""Outbox event ids are uuid5(saga uid, seq): the same row gets the same id in every retry."""

from __future__ import annotations

import uuid

from sagaz_operator.adapters.postgres.journal import _event_id


def test_an_outbox_event_id_is_the_uuid5_of_its_saga_and_sequence() -> None:
    for _ in range(20):
        saga = str(uuid.uuid4())
        for seq in (1, 2, 9, 10, 12345):
            assert _event_id(saga, seq) == uuid.uuid5(uuid.UUID(saga), str(seq))
    saga = str(uuid.uuid4())
    assert _event_id(saga, 1) != _event_id(saga, 2)

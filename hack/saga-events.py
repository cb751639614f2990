"""Print the saga events of one saga from Kafka (topic saga-events), as the demo shows them.

    .venv/bin/python hack/saga-events.py <saga-uid>     (after `source .dev/env`)

It is a consumer as a participant would write one, on ``sagaz_participant.Inbox``: consumer
group ``sagaz-demo-printer``, offsets committed after the events are handled, and each
event's ``ce_id`` recorded in PostgreSQL (table ``sagaz_inbox``, consumer ``demo-printer``)
when it is handled, so a redelivered event is not printed again — also across demo runs.
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
from aiokafka import AIOKafkaConsumer

from sagaz_participant import Event, Inbox
from sagaz_participant.schema import Connection

FINAL = ("SagaCompensated", "SagaSucceeded", "SagaFailed", "SagaCompensationFailed")


async def main(uid: str) -> None:
    finished = asyncio.Event()

    async def show(conn: Connection, event: Event) -> None:
        if event.key != uid.encode():
            return  # another saga's event: handled (recorded) without a word
        payload = event.json()
        detail = payload.get("step") or payload.get("message") or ""
        print(f"  {event.type:<28} {detail}", flush=True)
        if event.type.startswith(FINAL):
            finished.set()

    async with asyncpg.create_pool(
        os.environ["SAGAZ_DATABASE_URL"], min_size=1, max_size=2
    ) as pool:
        inbox = Inbox(pool, consumer="demo-printer")
        await inbox.install()
        consumer = AIOKafkaConsumer(
            "saga-events",
            bootstrap_servers=os.environ["SAGAZ_KAFKA_BOOTSTRAP_SERVERS"],
            group_id="sagaz-demo-printer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            async with asyncio.timeout(15):
                await inbox.consume(consumer, show, stop=finished)
        except TimeoutError:
            print("  (no final event within 15 s; events printed before are not printed again)")
        finally:
            await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

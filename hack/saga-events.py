"""Print the saga events of one saga from Kafka (topic saga-events), as the demo shows them.

.venv/bin/python hack/saga-events.py <saga-uid>     (after `source .dev/env`)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from aiokafka import AIOKafkaConsumer


async def main(uid: str) -> None:
    consumer = AIOKafkaConsumer(
        "saga-events",
        bootstrap_servers=os.environ["SAGAZ_KAFKA_BOOTSTRAP_SERVERS"],
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 15
        finished = False
        while not finished and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if record.key != uid.encode():
                        continue
                    headers = dict(record.headers)
                    event = headers["ce_type"].decode()
                    payload = json.loads(record.value)
                    detail = payload.get("step") or payload.get("message") or ""
                    print(f"  {event:<28} {detail}")
                    finished = finished or event.startswith(("SagaCompensated", "SagaSucceeded"))
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

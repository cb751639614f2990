"""sagaz_participant: what a service called by Sagaz sagas needs to be safe to call.

The operator delivers every step at least once and compensates steps whose outcome it does
not know. A participant is then correct only if it

- applies each request once, whatever the retries (``Idempotency``: the first answer per
  ``Idempotency-Key`` is stored in PostgreSQL in the same transaction as the request's
  writes; adapters for ASGI and aiohttp);
- accepts a compensation for an action it never saw, and refuses that action if it comes
  late (the same ``Idempotency``, which understands the operator's keys);
- handles each saga event from Kafka once (``Inbox``, keyed on the CloudEvents ``ce_id``).

It depends on asyncpg (and aiokafka, aiohttp for those adapters), never on Kopf or Kubernetes.
"""

from sagaz_participant.answers import Answer
from sagaz_participant.errors import (
    ConfigurationError,
    InvalidKeyError,
    NoTransactionError,
    ParticipantError,
)
from sagaz_participant.idempotency import Idempotency, Result, Source, connection
from sagaz_participant.inbox import Delivery, Event, Inbox

__all__ = [
    "Answer",
    "ConfigurationError",
    "Delivery",
    "Event",
    "Idempotency",
    "Inbox",
    "InvalidKeyError",
    "NoTransactionError",
    "ParticipantError",
    "Result",
    "Source",
    "connection",
]

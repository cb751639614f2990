"""Settings of one outbox relay worker (``sagaz-outbox-worker``), from ``SAGAZ_*`` variables.

    SAGAZ_DATABASE_URL              PostgreSQL URL of the database holding the outbox (required)
    SAGAZ_OUTBOX_TABLE              the outbox table, optionally schema.table (sagaz_outbox)
    SAGAZ_KAFKA_BOOTSTRAP_SERVERS   comma-separated host:port list (required)
    SAGAZ_KAFKA_TOPIC               topic for rows whose ``topic`` is NULL (saga-events)
    SAGAZ_OUTBOX_BATCH_SIZE         rows per batch (500)
    SAGAZ_OUTBOX_PARTITIONS         ordering shards; every worker of a table must agree (16)
    SAGAZ_OUTBOX_MAX_ATTEMPTS       failed attempts before a row is dead-lettered (10)
    SAGAZ_OUTBOXWORKER_NAME         the ``outboxworker`` metrics label (default: the table)
    SAGAZ_WORKER_ADDRESS            host:port serving /metrics and /healthz (0.0.0.0:8080);
                                    "off" serves nothing
    SAGAZ_EVENT_SOURCE              CloudEvents ``source`` of every record (sagaz/<table>)
    SAGAZ_OUTBOX_POLL_SECONDS       poll interval when no NOTIFY arrives (1)
    SAGAZ_OUTBOX_REBALANCE_SECONDS  how often partition ownership is revisited (2)
    SAGAZ_OUTBOX_PUBLISH_TIMEOUT_SECONDS
                                    how long a batch waits for Kafka's acknowledgements (30)
    SAGAZ_OUTBOX_RETRY_SECONDS      first wait after a row failed; doubles per attempt (1)
    SAGAZ_OUTBOX_RETRY_MAX_SECONDS  the longest such wait (60)

Everything is validated here, so a worker with unusable settings refuses to start with a
message naming the variable, instead of failing later in SQL or in the Kafka client.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sagaz_operator import environment
from sagaz_operator.api.outboxworker import MAX_PARTITIONS, SQL_IDENTIFIER
from sagaz_operator.domain import partitions
from sagaz_operator.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class RelaySettings:
    database_url: str
    bootstrap_servers: str
    table: str = "sagaz_outbox"
    topic: str = "saga-events"
    batch_size: int = 500
    partitions: int = 16
    max_attempts: int = 10
    worker_name: str = ""  # "" means the table's name
    address: tuple[str, int] | None = ("0.0.0.0", 8080)
    event_source: str = ""  # "" means sagaz/<table>
    poll_seconds: float = 1.0
    rebalance_seconds: float = 2.0
    publish_timeout_seconds: float = 30.0
    retry_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    stats_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not self.database_url:
            raise ConfigError(
                "SAGAZ_DATABASE_URL is not set: the worker needs the PostgreSQL database "
                "holding the outbox (e.g. postgresql://user:password@host:5432/orders)"
            )
        if not self.bootstrap_servers.strip():
            raise ConfigError("SAGAZ_KAFKA_BOOTSTRAP_SERVERS is not set (e.g. kafka.data.svc:9092)")
        if re.fullmatch(SQL_IDENTIFIER, self.table) is None:
            raise ConfigError(
                f"SAGAZ_OUTBOX_TABLE must be a plain SQL identifier, optionally "
                f"schema-qualified (letters, digits, _), not {self.table!r}"
            )
        if not partitions.valid_topic(self.topic):
            raise ConfigError(f"SAGAZ_KAFKA_TOPIC {self.topic!r} is not a valid Kafka topic name")
        _check_range("SAGAZ_OUTBOX_BATCH_SIZE", self.batch_size, 1, 100_000)
        _check_range("SAGAZ_OUTBOX_PARTITIONS", self.partitions, 1, MAX_PARTITIONS)
        _check_range("SAGAZ_OUTBOX_MAX_ATTEMPTS", self.max_attempts, 1, 1_000_000)
        for name, value in (
            ("SAGAZ_OUTBOX_POLL_SECONDS", self.poll_seconds),
            ("SAGAZ_OUTBOX_REBALANCE_SECONDS", self.rebalance_seconds),
            ("SAGAZ_OUTBOX_PUBLISH_TIMEOUT_SECONDS", self.publish_timeout_seconds),
            ("SAGAZ_OUTBOX_RETRY_MAX_SECONDS", self.retry_max_seconds),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
        if not (math.isfinite(self.retry_seconds) and self.retry_seconds >= 0):
            raise ConfigError(f"SAGAZ_OUTBOX_RETRY_SECONDS must be >= 0, not {self.retry_seconds}")

    @property
    def label(self) -> str:
        """The ``outboxworker`` metrics label."""
        return self.worker_name or self.table

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` attribute."""
        return self.event_source or f"sagaz/{self.table}"

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> RelaySettings:
        return cls(
            database_url=env.get("SAGAZ_DATABASE_URL", ""),
            bootstrap_servers=env.get("SAGAZ_KAFKA_BOOTSTRAP_SERVERS", ""),
            table=env.get("SAGAZ_OUTBOX_TABLE", "") or "sagaz_outbox",
            topic=env.get("SAGAZ_KAFKA_TOPIC", "") or "saga-events",
            batch_size=environment.whole_number(env, "SAGAZ_OUTBOX_BATCH_SIZE", 500),
            partitions=environment.whole_number(env, "SAGAZ_OUTBOX_PARTITIONS", 16),
            max_attempts=environment.whole_number(env, "SAGAZ_OUTBOX_MAX_ATTEMPTS", 10),
            worker_name=env.get("SAGAZ_OUTBOXWORKER_NAME", ""),
            address=environment.address(env, "SAGAZ_WORKER_ADDRESS", "0.0.0.0:8080"),
            event_source=env.get("SAGAZ_EVENT_SOURCE", ""),
            poll_seconds=environment.seconds(env, "SAGAZ_OUTBOX_POLL_SECONDS", 1.0),
            rebalance_seconds=environment.seconds(env, "SAGAZ_OUTBOX_REBALANCE_SECONDS", 2.0),
            publish_timeout_seconds=environment.seconds(
                env, "SAGAZ_OUTBOX_PUBLISH_TIMEOUT_SECONDS", 30.0
            ),
            retry_seconds=environment.seconds(env, "SAGAZ_OUTBOX_RETRY_SECONDS", 1.0),
            retry_max_seconds=environment.seconds(env, "SAGAZ_OUTBOX_RETRY_MAX_SECONDS", 60.0),
        )


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")

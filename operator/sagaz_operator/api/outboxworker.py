"""The OutboxWorker resource: a fleet of relays publishing an outbox table to Kafka.

The operator reconciles one into a Deployment and an autoscaling/v2 HorizontalPodAutoscaler.
``spec.replicas`` is the target of the scale subresource (``kubectl scale``) and is used while
autoscaling is off; ``status.selector`` is the label selector the scale subresource and the HPA
read. Parse with ``OutboxWorkerSpec.model_validate(body["spec"])``.

The table name ends up in SQL, so it is restricted to plain (optionally schema-qualified)
identifiers here rather than quoted later.
"""

from __future__ import annotations

from typing import Self

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from sagaz_operator.api.definition import (
    CONDITIONS_LIST,
    GROUP,
    ApiModel,
    Condition,
    SecretKeySelector,
    cel,
    validations,
)

MAX_PARTITIONS = 1024
#: The label the database Secret must carry (value ``"true"``) before the operator reads it or
#: mounts it into worker pods: the Secret's owner opts in, not the OutboxWorker's author.
OUTBOX_DATABASE_LABEL = f"{GROUP}/outbox-database"
SQL_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$"


class Database(ApiModel):
    """The PostgreSQL database holding the outbox table."""

    url_secret_ref: SecretKeySelector = Field(
        description=(
            "The Secret key holding the postgresql:// connection URL; the Secret must be"
            ' labelled sagaz.io/outbox-database: "true".'
        )
    )
    table: str = Field(
        "sagaz_outbox",
        pattern=SQL_IDENTIFIER,
        description="The outbox table, optionally schema-qualified (schema.table).",
    )


class Kafka(ApiModel):
    """The Kafka cluster events are published to."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.topic != '.' && self.topic != '..'",
                "kafka.topic must not be '.' or '..', which Kafka refuses",
                field_path=".topic",
            )
        )
    )

    bootstrap_servers: str = Field(
        min_length=1, description="Comma-separated host:port list of bootstrap brokers."
    )
    topic: str = Field(
        "saga-events",
        min_length=1,
        max_length=249,
        pattern=r"^[a-zA-Z0-9._-]+$",
        description="The topic for events that do not name their own.",
    )

    @field_validator("topic")
    @classmethod
    def _not_dots(cls, topic: str) -> str:
        if topic in {".", ".."}:
            raise ValueError("kafka.topic must not be '.' or '..', which Kafka refuses")
        return topic


class Autoscaling(ApiModel):
    """Scaling on the number of pending events, through a HorizontalPodAutoscaler."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
                field_path=".minReplicas",
            )
        )
    )

    enabled: bool = Field(
        False, description="True: an HPA sets the replicas; spec.replicas is ignored."
    )
    min_replicas: int = Field(1, ge=1, le=MAX_PARTITIONS, description="The fewest replicas.")
    max_replicas: int = Field(
        10,
        ge=1,
        le=MAX_PARTITIONS,
        description="The most replicas; capped at spec.partitions, beyond which replicas idle.",
    )
    target_pending_events_per_replica: int = Field(
        1000, ge=1, description="Pending events per replica the HPA aims for."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must not exceed autoscaling.maxReplicas")
        return self


class OutboxWorkerSpec(ApiModel):
    """Relay workers that publish an outbox table's pending events to Kafka, in order per key."""

    database: Database = Field(description="Where the outbox table is.")
    kafka: Kafka = Field(description="Where events are published.")
    replicas: int = Field(
        1, ge=0, description="Worker replicas while autoscaling is off (the scale subresource)."
    )
    autoscaling: Autoscaling | None = Field(None, description="Scaling on pending events.")
    batch_size: int = Field(500, ge=1, le=10000, description="Events claimed per batch.")
    partitions: int = Field(
        16,
        ge=1,
        le=MAX_PARTITIONS,
        description="Ordering shards: events are sharded by a hash of their key, and one worker"
        " publishes a shard at a time.",
    )
    max_attempts: int = Field(
        10, ge=1, le=1000, description="Publishing attempts before an event is dead-lettered."
    )
    image: str | None = Field(
        None, description="The worker image. Omitted or empty: the operator's own image."
    )
    resources: dict[str, JsonValue] | None = Field(
        None, description="The worker container's resources (requests and limits)."
    )


class OutboxWorkerStatus(ApiModel):
    """The fleet's size and backlog, written by the operator."""

    replicas: int | None = Field(None, ge=0, description="Worker pods that exist.")
    ready_replicas: int | None = Field(None, ge=0, description="Worker pods that are ready.")
    pending_events: int | None = Field(None, ge=0, description="Events waiting to be published.")
    oldest_pending_seconds: float | None = Field(
        None, ge=0, description="Age of the oldest pending event."
    )
    dead_events: int | None = Field(
        None, ge=0, description="Events dead-lettered after maxAttempts."
    )
    selector: str | None = Field(
        None, description="The label selector of the worker pods (for the scale subresource)."
    )
    conditions: tuple[Condition, ...] | None = Field(
        None, json_schema_extra=CONDITIONS_LIST, description="The fleet's conditions."
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The metadata.generation the status describes."
    )

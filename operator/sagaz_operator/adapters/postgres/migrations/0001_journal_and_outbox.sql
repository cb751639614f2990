-- Sagas, their append-only journal, and the transactional outbox (DESIGN.md §4.2, §4.3).

CREATE TABLE sagaz_sagas (
    uid                    uuid PRIMARY KEY,
    namespace              text        NOT NULL,
    name                   text        NOT NULL,
    definition_name        text        NOT NULL,  -- "" for an inline definition
    definition_generation  bigint      NOT NULL,
    definition             jsonb       NOT NULL,  -- the SagaDefinition spec snapshotted at start
    input                  jsonb       NOT NULL,
    phase                  text        NOT NULL,
    version                integer     NOT NULL DEFAULT 0,  -- number of journal entries
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    finished_at            timestamptz
);
CREATE INDEX sagaz_sagas_unfinished ON sagaz_sagas (namespace, name) WHERE finished_at IS NULL;

CREATE TABLE sagaz_journal (
    saga_uid     uuid        NOT NULL REFERENCES sagaz_sagas (uid) ON DELETE CASCADE,
    seq          integer     NOT NULL,  -- 1, 2, 3... per saga; the primary key fences writers
    event_type   text        NOT NULL,
    event        jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (saga_uid, seq)
);

-- Generic: any service may create this table (see examples/outboxworker/outbox.sql) and run an OutboxWorker on it.
CREATE TABLE sagaz_outbox (
    id              uuid        PRIMARY KEY,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,  -- the Kafka record key; ordering holds per aggregate
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}',
    topic           text,                  -- NULL: the OutboxWorker's default topic
    created_at      timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'published', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    published_at    timestamptz
);
CREATE INDEX sagaz_outbox_pending ON sagaz_outbox (created_at) WHERE status = 'pending';

CREATE FUNCTION sagaz_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_NAME, '');
    RETURN NULL;
END $$;

CREATE TRIGGER sagaz_outbox_notify AFTER INSERT ON sagaz_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION sagaz_outbox_notify();

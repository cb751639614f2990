-- The transactional outbox any service can relay to Kafka with an OutboxWorker (DESIGN.md §4.3).
--
-- Write each event to this table in the same transaction as the state change it announces;
-- an OutboxWorker (sagaz-outbox-worker) publishes it, at least once, in order per aggregate:
--
--   id              the event id: Kafka header ce_id, so consumers drop duplicates by it
--   aggregate_type  what kind of thing changed (e.g. 'Order'); informational
--   aggregate_id    the Kafka record key; events of one aggregate are published in order
--   event_type      Kafka header ce_type (e.g. 'OrderPlaced')
--   payload         the record's value (JSON)
--   headers         extra Kafka headers: strings as they are, other values as JSON text
--                   (names starting with ce_ and content-type are reserved and dropped)
--   topic           NULL: the OutboxWorker's default topic (spec.kafka.topic)
--   created_at      publication order within an aggregate: (created_at, headers.sequence when
--                   it is a number, id). now() is the same for every row of a transaction, so
--                   several events of one aggregate written in one transaction need a numeric
--                   "sequence" header (or distinct created_at values) to keep their order.
--   status, attempts, last_error, published_at
--                   written by the relay: pending -> published, or dead after maxAttempts
--                   failed attempts (a dead row no longer holds back its aggregate's later
--                   events); retry a dead row with: UPDATE ... SET status = 'pending', attempts = 0
--
-- The insert trigger NOTIFYs on a channel named like the table, so workers wake at once.
--
-- Another name: replace every "sagaz_outbox" below, e.g.
--   sed 's/sagaz_outbox/orders_outbox/g' examples/outboxworker/outbox.sql | psql "$DATABASE_URL"
-- and set spec.database.table (SAGAZ_OUTBOX_TABLE) to it, schema-qualified if need be.
-- The statements are idempotent (PostgreSQL >= 14) and define the same columns, index and
-- trigger as the operator's own migration (a test checks that they agree):
-- operator/sagaz_operator/adapters/postgres/migrations/0001_journal_and_outbox.sql
--
-- Published rows stay in the table; delete old ones as your retention needs, e.g.
--   DELETE FROM sagaz_outbox WHERE status = 'published' AND published_at < now() - interval '7 days';

CREATE TABLE IF NOT EXISTS sagaz_outbox (
    id              uuid        PRIMARY KEY,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    event_type      text        NOT NULL,
    payload         jsonb       NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}',
    topic           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'published', 'dead')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    published_at    timestamptz
);
CREATE INDEX IF NOT EXISTS sagaz_outbox_pending ON sagaz_outbox (created_at)
    WHERE status = 'pending';

CREATE OR REPLACE FUNCTION sagaz_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_NAME, '');
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER sagaz_outbox_notify AFTER INSERT ON sagaz_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION sagaz_outbox_notify();

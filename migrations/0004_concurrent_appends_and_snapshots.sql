-- Concurrent appends (README "Event store"). The one-row position counter serialised every
-- writer from its first insert to its commit. Positions now come from a sequence, so writers
-- to different aggregates commit side by side (and PostgreSQL flushes their commits together),
-- but a position may then commit after a higher one, and a rolled-back writer leaves a hole.
-- So consumers follow the log in (transaction_id, position) order, and only read events of
-- transactions older than the oldest one still running (pg_snapshot_xmin): such a transaction
-- has ended, so nothing can still appear below what a consumer has seen.
DROP TRIGGER events_assign_position ON events;
DROP FUNCTION events_assign_position();
CREATE SEQUENCE events_position_seq OWNED BY events.position;
SELECT setval('events_position_seq', greatest(last, 1), last > 0) FROM event_position;
DROP TABLE event_position;
ALTER TABLE events ALTER COLUMN position SET DEFAULT nextval('events_position_seq');

-- The writing transaction's id (xid8 as bigint). Events written before this migration were
-- committed in position order: they all get 0, and position orders them.
ALTER TABLE events ADD COLUMN transaction_id bigint NOT NULL DEFAULT 0;
ALTER TABLE events ALTER COLUMN transaction_id SET DEFAULT pg_current_xact_id()::text::bigint;
CREATE INDEX events_log_order ON events (transaction_id, position);

-- A checkpoint is now (transaction_id, position); an old checkpoint at position p is exactly
-- (0, p).
ALTER TABLE projection_checkpoints ADD COLUMN transaction_id bigint NOT NULL DEFAULT 0;

-- The state of an aggregate as of `last_sequence`, written in the same statement as the events
-- that led to it, every few events: loading reads it and only the events after it, so the cost
-- of a command stays flat however long the stream grows. `state_version` names the shape of
-- the state; a snapshot of another shape is ignored (the stream is replayed).
CREATE TABLE aggregate_snapshots
(
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    last_sequence  bigint NOT NULL,
    state_version  integer NOT NULL,
    state          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);
-- postgres-es's own snapshot table was never used.
DROP TABLE snapshots;

-- Projections being rebuilt, with the rebuilding transaction. Such a transaction writes no
-- events, so consumers leave it out of their horizon (a long rebuild must not hold every
-- other read model back), and commands do not wait for a read model while it is rebuilt.
-- A row whose transaction has ended means nothing (a crashed rebuild leaves one behind).
CREATE TABLE projection_rebuilds
(
    name           text   PRIMARY KEY,
    transaction_id bigint NOT NULL
);

-- The time machine (GET /audit/views/, `ensemble views at`).
-- A moment is found in the log by when its events were recorded.
CREATE INDEX events_recorded_at ON events (recorded_at);

-- The replays kept: each a schema holding the read models as they stood at a cut of the log
-- (the prefix of the log in its order up to and including the event at transaction_id,
-- position), built batch by batch under a name of its own, then renamed into place and
-- registered here in one transaction. Shared by every process.
CREATE TABLE view_replays
(
    schema_name    text        PRIMARY KEY,
    transaction_id bigint      NOT NULL,
    position       bigint      NOT NULL,
    events         bigint      NOT NULL,
    -- The newest migration when it was built: a replay of an older shape is never read (its
    -- tables may lack what the code now reads) and goes first.
    shape          bigint      NOT NULL,
    built_at       timestamptz NOT NULL DEFAULT now(),
    used_at        timestamptz NOT NULL DEFAULT now()
);

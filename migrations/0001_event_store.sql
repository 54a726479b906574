-- The event store of postgres-es 0.5 (its db/init.sql), plus what Ensemble relies on:
--   position     a global, gap-safe position (see the trigger below and README "Event store")
--   recorded_at  when the event was committed (transaction time)
CREATE TABLE events
(
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    position       bigint                       NOT NULL,
    recorded_at    timestamptz                  NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_position_key ON events (position);

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          json                                 NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- One row holding the last position handed out. Each insert into `events` takes the next
-- number with `UPDATE ... RETURNING`, which row-locks the counter until the inserting
-- transaction ends. Writers are therefore serialised from their first event to their commit:
-- positions are handed out in commit order, so a reader that has seen position N can never
-- later find a committed event below N. Because the counter is an ordinary row (not a
-- sequence), a rolled-back writer gives its numbers back: positions have no holes either.
CREATE TABLE event_position
(
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last      bigint  NOT NULL
);
INSERT INTO event_position (singleton, last) VALUES (true, 0);

CREATE FUNCTION events_assign_position() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    UPDATE event_position SET last = last + 1 WHERE singleton RETURNING last INTO NEW.position;
    NEW.recorded_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER events_assign_position
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_position();

-- Wakes projection runners and the mail worker in every server process after a commit.
CREATE FUNCTION events_notify() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('ensemble_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- How far each projection (or other log consumer) has applied the log.
CREATE TABLE projection_checkpoints
(
    name     text PRIMARY KEY,
    position bigint NOT NULL DEFAULT 0
);

-- Ids handed to new records: positive integers in creation order per kind.
CREATE SEQUENCE absence_id_seq START 1;

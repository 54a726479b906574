-- Personal data (README "Personal data"): crypto-shredding and opaque ids.
--
-- The key of each person whose data events carry, one row per subject (`orchestra-member:17`).
-- Erasure sets `key` to NULL in the append that records it; the row stays as a tombstone so
-- that the subject never gets a key again. Back this table up with the events: without it,
-- every sealed value in the log is unreadable.
CREATE TABLE personal_keys
(
    subject      text        PRIMARY KEY,
    key          bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz
);

-- Unique personal values (names, openids, later emails), as keyed hashes (HMAC-SHA256 under
-- `store_secrets.blind-index`), claimed and released in the same statement as the events that
-- enrol, bind, unbind or erase. Erasure deletes the owner's rows: nothing of the value is
-- left. Not a projection: it is written beside the log and never rebuilt.
CREATE TABLE reservations
(
    scope text  NOT NULL,
    blind bytea NOT NULL,
    owner text  NOT NULL,
    PRIMARY KEY (scope, blind)
);
CREATE INDEX reservations_owner ON reservations (owner, scope);

-- Secrets the store generates for itself on first start (the blind-index key).
CREATE TABLE store_secrets
(
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);

-- Rewrites of stored data that SQL alone cannot do (src/personal_migration.rs).
CREATE TABLE data_migrations
(
    name       text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    detail     text        NOT NULL
);

-- Member ids: drawn by the importer before the roster command (their keys are created first).
CREATE SEQUENCE member_id_seq START 1;

-- The orchestra read models, keyed by member id: names are read from the members' table by
-- join (one row to scrub on erasure), never used as a key.
DROP TABLE orchestra_members;
CREATE TABLE orchestra_members
(
    id      bigint  PRIMARY KEY,
    name    text    NOT NULL,          -- clear, or `former member #<id>` once erased
    section text    NOT NULL CHECK (section IN ('stringed', 'wind', 'percussion')),
    role    text    NOT NULL CHECK (role IN ('member', 'manager')),
    binding bigint,                    -- the current WeChat binding's number (tokens carry it)
    active  boolean NOT NULL           -- false once erased
);

DROP TABLE orchestra_absences;
CREATE TABLE orchestra_absences
(
    id           bigint  PRIMARY KEY,
    applier_id   bigint  NOT NULL,
    section      text    NOT NULL,
    processor_id bigint,
    reason       text    NOT NULL,
    time_absence date    NOT NULL,
    time_apply   date    NOT NULL,
    result       text    NOT NULL,
    permission   boolean NOT NULL,
    type         text    NOT NULL
);
-- GET /absence/ (own absences by date), and erasure's scrub of one member's absences
CREATE INDEX orchestra_absences_applier ON orchestra_absences (applier_id, time_absence, id);
-- GET /manager/, /manager/next/, /manager/<date>/present/, history
CREATE INDEX orchestra_absences_date ON orchestra_absences (time_absence, id);
-- GET /manager/future/ (unprocessed only)
CREATE INDEX orchestra_absences_unprocessed ON orchestra_absences (time_absence, id) WHERE processor_id IS NULL;

TRUNCATE orchestra_notify_addresses, orchestra_season;
UPDATE projection_checkpoints SET position = 0, transaction_id = 0
WHERE name IN ('orchestra_roster', 'orchestra_absences');

-- Whose absence a mail is about, so that erasure can redact it.
ALTER TABLE mail_outbox ADD COLUMN person text;
CREATE INDEX mail_outbox_person ON mail_outbox (person) WHERE person IS NOT NULL;

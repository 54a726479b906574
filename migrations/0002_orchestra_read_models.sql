-- Read models of the orchestra context. Written only by the projections in `projections/`;
-- every row is a function of the event log and can be rebuilt from it.

CREATE TABLE orchestra_members
(
    id      bigint PRIMARY KEY,           -- enrolment order
    name    text   NOT NULL UNIQUE,
    section text   NOT NULL CHECK (section IN ('stringed', 'wind', 'percussion')),
    role    text   NOT NULL CHECK (role IN ('member', 'manager')),
    openid  text UNIQUE
);

CREATE TABLE orchestra_notify_addresses
(
    email text PRIMARY KEY
);

CREATE TABLE orchestra_season
(
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    season    bigint  NOT NULL
);

CREATE TABLE orchestra_absences
(
    id           bigint  PRIMARY KEY,
    applier      text    NOT NULL,
    section      text    NOT NULL,
    processor    text,
    reason       text    NOT NULL,
    time_absence date    NOT NULL,
    time_apply   date    NOT NULL,
    result       text    NOT NULL,
    permission   boolean NOT NULL,
    type         text    NOT NULL
);
-- GET /absence/ (own absences by date)
CREATE INDEX orchestra_absences_applier ON orchestra_absences (applier, time_absence, id);
-- GET /manager/, /manager/next/, /manager/<date>/present/, history
CREATE INDEX orchestra_absences_date ON orchestra_absences (time_absence, id);
-- GET /manager/future/ (unprocessed only)
CREATE INDEX orchestra_absences_unprocessed ON orchestra_absences (time_absence, id) WHERE processor IS NULL;

-- Mail driven from the log: one row per (event, recipient), written by the outbox consumer and
-- delivered by the mail worker. Never rebuilt: a row that exists is never mailed again.
CREATE TABLE mail_outbox
(
    id              bigserial   PRIMARY KEY,
    event_position  bigint      NOT NULL,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    sent_at         timestamptz,
    UNIQUE (event_position, recipient)
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;

-- The outbox consumer's own view of who is to be mailed, as of the event being consumed.
CREATE TABLE mail_recipients
(
    context text NOT NULL,
    email   text NOT NULL,
    PRIMARY KEY (context, email)
);

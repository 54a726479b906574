-- Subscriptions: outside systems that follow the log over HTTP (`GET /subscriptions/<name>/
-- events`, as Server-Sent Events or long-poll JSON), created by an operator
-- (`ensemble subscriptions create`). Holds no personal data: a name chosen by the operator,
-- the token's SHA-256 (the token itself is shown once), what it may read, where it stands.
CREATE TABLE subscriptions
(
    name          text        PRIMARY KEY,
    token_sha256  bytea       NOT NULL,
    -- The record types it may read (`*`: all).
    record_types  text[]      NOT NULL,
    -- Whether personal values are opened for it (else they stay sealed, as in the log).
    personal      boolean     NOT NULL DEFAULT false,
    -- The last event it acknowledged (`POST .../ack`): where a reader resumes by default.
    acked_position bigint     NOT NULL DEFAULT 0,
    acked_at      timestamptz,
    -- One active reader at a time: who, and until when its lease holds (renewed while it reads).
    reader        text,
    reader_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Safe retries: the first answer to a write sent with an `Idempotency-Key` header, kept 24 h
-- (src/http/idempotency.rs). `scope` and `request_hash` are SHA-256 digests: no token, path or
-- body is stored in clear; `response_body` is what the client was answered.
CREATE TABLE idempotency_keys (
    scope          text        NOT NULL,
    key            text        NOT NULL,
    request_hash   text        NOT NULL,
    status         smallint,
    content_type   text,
    response_body  bytea,
    locked_until   timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

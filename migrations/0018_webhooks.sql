-- Webhook delivery of a subscription: batches POSTed to a URL the operator gave, signed with
-- HMAC-SHA256 under a secret of the subscription's own (shown once when it is made), one batch
-- in flight at a time (the delivering process holds the subscription's reader lease), retried
-- with backoff, and set aside as dead after too many failures until an operator retries it.
-- What it has delivered is what it acknowledged (`acked_position`): nothing is lost while it
-- waits.
ALTER TABLE subscriptions
    ADD COLUMN webhook_url      text,
    ADD COLUMN webhook_secret   bytea,
    -- Failed attempts in a row; reset by a delivery.
    ADD COLUMN webhook_failures integer     NOT NULL DEFAULT 0,
    -- No attempt before this (the backoff after a failure).
    ADD COLUMN webhook_next_at  timestamptz,
    -- Set when it gave up (dead letter): no attempt until `ensemble subscriptions retry`.
    ADD COLUMN webhook_dead_at  timestamptz,
    -- The last failure, in a few words (a status, a timeout; never the body or a secret).
    ADD COLUMN webhook_error    text,
    ADD CONSTRAINT webhook_whole CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL));

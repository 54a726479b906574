-- Mail delivery that survives stalls and crashes (see src/mailer.rs):
--   claimed_until  a worker is sending the row until then (a lease, committed before any SMTP
--                  traffic: no transaction is ever held across network I/O)
--   failed_at      set aside after a permanent failure or too many attempts (the dead letters
--                  of `ensemble mail list --failed`; `ensemble mail retry ID` brings one back)
ALTER TABLE mail_outbox
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN failed_at     timestamptz;
DROP INDEX mail_outbox_due;
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX mail_outbox_failed ON mail_outbox (id) WHERE failed_at IS NOT NULL;

-- When each address was last mailed, so that one address gets at most one mail per interval
-- (what arrives meanwhile goes out as one digest). Keyed by a hash of the address.
CREATE TABLE mail_throttle
(
    recipient_hash text        PRIMARY KEY,
    last_sent_at   timestamptz NOT NULL
);

-- Per-member write limits (GCRA: the theoretical arrival time of the next write). Unlogged:
-- no WAL, no fsync on the request path; after a crash every member starts afresh.
-- Keyed by an opaque key (`orchestra-member:<roster id>`), never by a name.
CREATE UNLOGGED TABLE write_limits
(
    key text        PRIMARY KEY,
    tat timestamptz NOT NULL
);

-- Safe retries are bounded per caller (src/http/idempotency.rs, ENSEMBLE_RETRY_KEYS_PER_CALLER): each claim
-- drops the caller's oldest answers beyond the bound, found by this index. Keys were scoped
-- to a digest of the Authorization header; they are now scoped to who a verified token speaks
-- for, so the answers kept so far can no longer be found: they go.
CREATE INDEX idempotency_keys_scope_created ON idempotency_keys (scope, created_at);
DELETE FROM idempotency_keys;
-- An erasure drops only the answers that may name the erased person: theirs (`subject`, the
-- caller's opaque subject, such as `campus-user:7`) and those that name others than their
-- caller (`names_others`, marked by the handler); before, it emptied the whole cache, which
-- anyone could do by deleting an account of their own.
ALTER TABLE idempotency_keys
    ADD COLUMN subject      text,
    ADD COLUMN names_others boolean NOT NULL DEFAULT true;

-- Every WeChat binding of the orchestra is shown to operators (`roster list`) with when and
-- through which request it was made, and each request to be bound that waits for approval
-- (ENSEMBLE_MANAGER_BINDING=approve), one row per account that asked. Filled by the roster
-- projection; a rebuild fills them for bindings made before.
ALTER TABLE orchestra_members
    ADD COLUMN bound_at      timestamptz,
    ADD COLUMN bound_request text;
CREATE TABLE orchestra_binding_requests
(
    member_id    bigint      NOT NULL,
    request_id   text        NOT NULL,
    requested_at timestamptz NOT NULL,
    PRIMARY KEY (member_id, request_id)
);

-- Safe retries are bounded per caller (src/http/idempotency.rs, ENSEMBLE_RETRY_KEYS_PER_CALLER): each claim
-- drops the caller's oldest answers beyond the bound, found by this index. Keys were scoped
-- to a digest of the Authorization header; they are now scoped to who a verified token speaks
-- for, so the answers kept so far can no longer be found: they go.
CREATE INDEX idempotency_keys_scope_created ON idempotency_keys (scope, created_at);
DELETE FROM idempotency_keys;

-- Every WeChat binding of the orchestra is shown to operators (`roster list`) with when and
-- through which request it was made, and a manager's request waiting for approval
-- (ENSEMBLE_MANAGER_BINDING=approve) likewise. Filled by the roster projection; a rebuild
-- fills them for bindings made before.
ALTER TABLE orchestra_members
    ADD COLUMN bound_at        timestamptz,
    ADD COLUMN bound_request   text,
    ADD COLUMN pending_since   timestamptz,
    ADD COLUMN pending_request text;

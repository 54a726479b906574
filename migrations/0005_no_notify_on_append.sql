-- NOTIFY serialises commits: PostgreSQL holds a database-wide lock from the notifying
-- transaction's pre-commit until after its commit record is flushed, so no two appends could
-- share a WAL flush (group commit). Appends no longer notify; the projector announces, once per
-- pass, that it applied something (src/projector.rs).
DROP TRIGGER events_notify ON events;
DROP FUNCTION events_notify();

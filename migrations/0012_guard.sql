-- The guard of an append that touches people's keys or records' reservations (src/store.rs):
-- transaction-scoped advisory locks, exclusive on what it destroys or frees (an erasure's key,
-- a deletion's or rename's reservations) and shared on what it needs alive (`Require`,
-- `RequireHeld`), taken in one global order, BEFORE the statement writes anything: an
-- advisory lock needs no transaction id, so a transaction gets its id (its place in the log)
-- only once it holds its locks, and the lock manager queues newcomers behind a waiting
-- exclusive request. So a change that names a person or a record is either wholly before
-- their erasure or deletion in the log, or waits for it and fails. (Row locks, used before,
-- need a transaction id before they wait: a deletion waiting behind a change could get the
-- lower id, and later changes could overtake it.)
CREATE FUNCTION ensemble_guard(
    exclusive text[], shared text[], held_scopes text[], held_owners text[]
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    k record;
    wanted int;
    alive int;
    missing int;
BEGIN
    -- One lock per key, in the strongest mode any of its names needs (two names with one
    -- hash must not take it shared and then exclusive: two such appends would deadlock).
    FOR k IN
        SELECT hashtext(x) AS h, bool_or(ex) AS ex FROM (
            SELECT x, true AS ex FROM unnest(exclusive) AS x
            UNION ALL SELECT x, false FROM unnest(shared) AS x
            UNION ALL SELECT x, false FROM unnest(held_owners) AS x
        ) AS wanted_locks
        GROUP BY hashtext(x) ORDER BY hashtext(x)
    LOOP
        IF k.ex THEN
            PERFORM pg_advisory_xact_lock(7011, k.h);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(7011, k.h);
        END IF;
    END LOOP;
    SELECT count(DISTINCT s) INTO wanted FROM unnest(shared) AS s;
    IF wanted > 0 THEN
        SELECT count(*) INTO alive FROM personal_keys
            WHERE subject = ANY (shared) AND key IS NOT NULL;
        IF alive < wanted THEN
            RAISE EXCEPTION 'a person this change names was erased' USING ERRCODE = 'EN001';
        END IF;
    END IF;
    IF cardinality(held_owners) > 0 THEN
        SELECT count(*) INTO missing FROM unnest(held_scopes, held_owners) AS w(scope, owner)
            WHERE NOT EXISTS (
                SELECT FROM reservations r WHERE r.scope = w.scope AND r.owner = w.owner
            );
        IF missing > 0 THEN
            RAISE EXCEPTION 'a record this change names was deleted' USING ERRCODE = 'EN001';
        END IF;
    END IF;
    RETURN true;
END
$$;

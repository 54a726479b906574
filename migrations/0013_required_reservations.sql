-- An append that names a record by its reservation (an application its block) calls this in
-- its own statement, before it writes an event: a share lock on each owner's reservation rows
-- waits for a deletion committing at the same moment (which deletes them first), and the whole
-- append fails (SQLSTATE EN001, as for an erased person) if any owner holds nothing in its
-- scope any more.
CREATE FUNCTION ensemble_require_held(scopes text[], owners text[]) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    missing int;
BEGIN
    IF cardinality(owners) = 0 THEN
        RETURN true;
    END IF;
    PERFORM 1 FROM reservations r
        JOIN unnest(scopes, owners) AS w(scope, owner) ON r.scope = w.scope AND r.owner = w.owner
        FOR SHARE OF r;
    SELECT count(*) INTO missing FROM unnest(scopes, owners) AS w(scope, owner)
        WHERE NOT EXISTS (SELECT FROM reservations r WHERE r.scope = w.scope AND r.owner = w.owner);
    IF missing > 0 THEN
        RAISE EXCEPTION 'a record this change names was deleted' USING ERRCODE = 'EN001';
    END IF;
    RETURN true;
END
$$;

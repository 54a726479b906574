-- An append that names people (a new owner, a manager, a follower; the author of a campus
-- user's write) calls this in its own statement: it takes a share lock on each person's key
-- row, so an erasure committing at the same moment is waited for, and fails the whole append
-- (SQLSTATE EN001) if any of them was erased. So no event can name a person after the event
-- that erased them.
CREATE FUNCTION ensemble_require_keys(subjects text[]) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    wanted int;
    alive  int;
BEGIN
    SELECT count(DISTINCT s) INTO wanted FROM unnest(subjects) AS s;
    IF wanted = 0 THEN
        RETURN true;
    END IF;
    SELECT count(*) INTO alive FROM (
        SELECT 1 FROM personal_keys
        WHERE subject = ANY (subjects) AND key IS NOT NULL
        FOR SHARE
    ) AS held;
    IF alive < wanted THEN
        RAISE EXCEPTION 'a person this change names was erased' USING ERRCODE = 'EN001';
    END IF;
    RETURN true;
END
$$;

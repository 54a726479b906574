-- A command of the orchestra decided on what the process remembered of its caller (binding,
-- role, section, the season) is checked against the roster as it is now by the append's own
-- statement (`runtime::bus::Holds`, called from the guard of `runtime::store::append` after
-- its locks): a member unbound, erased, moved to another section or role, or a season begun,
-- by any process, stops the write here, and the server looks the caller up again. `caller`:
-- {"id", "subject", "binding", "role", "section", "season"} as the caller's check read them.
CREATE FUNCTION orchestra_caller_holds(caller jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM orchestra_members m
        WHERE m.id = (caller->>'id')::bigint AND m.active
          AND m.binding = (caller->>'binding')::bigint
          AND m.role = caller->>'role' AND m.section = caller->>'section'
    ) OR coalesce((SELECT season FROM orchestra_season), 0) <> (caller->>'season')::bigint
      OR NOT EXISTS (
        SELECT FROM personal_keys WHERE subject = caller->>'subject' AND key IS NOT NULL
    ) THEN
        RAISE EXCEPTION 'the caller no longer holds what the command was decided on'
            USING ERRCODE = 'EN002';
    END IF;
    RETURN true;
END
$$;

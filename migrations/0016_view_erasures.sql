-- A replay of the time machine holds the read models of its cut, names and texts opened with
-- the keys that existed when it was built. It remembers how many erasures had committed then
-- (`erasures.generation`): once another erasure commits, it is never read again and is dropped
-- (the next question about its moment replays anew, without what was erased). Replays built
-- before this migration count as built before every erasure.
ALTER TABLE view_replays ADD COLUMN erasures bigint NOT NULL DEFAULT -1;

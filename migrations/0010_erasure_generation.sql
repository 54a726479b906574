-- How many erasures have committed. An answer kept for safe retries is stored only if no
-- erasure committed since its request was claimed (and the erasure, in its own statement and
-- again in the projector, empties the retry cache): no answer that may name an erased person
-- outlives the erasure.
CREATE TABLE erasures
(
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint  NOT NULL
);
INSERT INTO erasures (singleton, generation) VALUES (true, 0);
ALTER TABLE idempotency_keys ADD COLUMN erasures bigint NOT NULL DEFAULT 0;

-- How many times each read model was rebuilt and swapped in. A rebuild that catches up to the
-- head leaves its checkpoint where it was while the rows under it may change (that is what a
-- rebuild is for), so the state of the read models that answers kept between reads are keyed
-- by (`runtime::answers::ReadModels`) counts the swaps too.
ALTER TABLE projection_checkpoints ADD COLUMN rebuilds bigint NOT NULL DEFAULT 0;

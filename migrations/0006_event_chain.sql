-- Tamper evidence: a hash chain over the whole log, in the order consumers follow it
-- ((transaction_id, position)). Each link covers one event's content and the previous link.
-- Written by the `event_chain` consumer (projections/src/chain.rs), checked by
-- `ensemble events verify`. Never rebuilt: a rebuilt chain would bless whatever the log holds.
CREATE TABLE event_links (
    transaction_id bigint NOT NULL,
    position       bigint NOT NULL,
    link           bytea  NOT NULL,
    PRIMARY KEY (transaction_id, position)
);

-- What `events verify` found, wherever it ran (`ensemble events verify`, the console's
-- Integrity page): the console shows the last verdict and when it was reached. Holds no
-- personal data: positions, counts, a fixed reason, and who ran it as the log names them.
CREATE TABLE chain_verifications
(
    id            bigserial   PRIMARY KEY,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    intact        boolean     NOT NULL,
    -- Intact: the events the chain covers, its head, and those not chained yet.
    checked       bigint      NOT NULL DEFAULT 0,
    head_position bigint,
    unchained     bigint      NOT NULL DEFAULT 0,
    -- Broken: the first position where the log and the chain disagree, and why.
    bad_position  bigint,
    reason        text,
    -- `cli`, or `console:<the superuser's subject>`.
    run_by        text        NOT NULL
);

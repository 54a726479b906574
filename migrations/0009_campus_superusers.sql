-- Secrets that must never be in the log: password hashes (argon2id, PHC strings), by subject.
-- Written in the same statement as the event that sets them (StoreEffect::Credential);
-- deleted with the subject's key on erasure. Not a projection: back it up with the events.
CREATE TABLE credentials
(
    subject text PRIMARY KEY,
    hash    text NOT NULL
);

-- Campus superusers (read model of the Superuser streams): usernames and emails opened
-- with their keys; looked up by id only (the login finds the id by the username's keyed hash).
CREATE TABLE campus_superusers
(
    id            text        PRIMARY KEY,
    username      text        NOT NULL,
    email         text        NOT NULL,
    active        boolean     NOT NULL,
    registered_at timestamptz NOT NULL
);

-- The campus platform's read models (one projection, `campus`, keeps them all: a user's
-- deletion reaches their follows, appointments and feedback in the same transaction), and the
-- number sequences its records are created with (ids are assigned before the command, in
-- creation order per kind; a refused command leaves a gap).

CREATE SEQUENCE campus_user_id_seq;
CREATE SEQUENCE campus_block_id_seq;
CREATE SEQUENCE campus_category_id_seq;
CREATE SEQUENCE campus_address_id_seq;
CREATE SEQUENCE campus_application_id_seq;
CREATE SEQUENCE campus_organization_id_seq;
CREATE SEQUENCE campus_appointment_id_seq;
CREATE SEQUENCE campus_follow_id_seq;
CREATE SEQUENCE campus_feedback_id_seq;

-- Users, opened with their keys. A deleted user's row stays as a placeholder (已注销用户, no
-- other field) so that organisations they owned still show an owner.
CREATE TABLE campus_users
(
    id            bigint      PRIMARY KEY,
    openid        text,
    name          text        NOT NULL,
    avatar        text,
    email         text,
    sign          text,
    deleted       boolean     NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL
);

-- A deleted block stays (flagged) so that organisations in it still show it.
CREATE TABLE campus_blocks
(
    id      bigint  PRIMARY KEY,
    name    text    NOT NULL,
    deleted boolean NOT NULL DEFAULT false
);

CREATE TABLE campus_categories
(
    id   bigint PRIMARY KEY,
    name text   NOT NULL
);

CREATE TABLE campus_addresses
(
    id        bigint PRIMARY KEY,
    name      text   NOT NULL,
    longitude text   NOT NULL,
    latitude  text   NOT NULL
);

CREATE TABLE campus_applications
(
    id          bigint      PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL,
    pub_time    timestamptz NOT NULL,
    status      smallint    NOT NULL,
    user_id     bigint      NOT NULL,
    block_id    bigint      NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false
);
CREATE INDEX campus_applications_user ON campus_applications (user_id, id) WHERE NOT deleted;
CREATE INDEX campus_applications_live ON campus_applications (id) WHERE NOT deleted;

CREATE TABLE campus_organizations
(
    id             bigint      PRIMARY KEY,
    application_id bigint      NOT NULL UNIQUE,
    name           text        NOT NULL,
    description    text,
    avatar         text,
    create_time    timestamptz NOT NULL,
    owner_id       bigint      NOT NULL,
    block_id       bigint      NOT NULL
);
CREATE INDEX campus_organizations_block ON campus_organizations (block_id, id);
CREATE INDEX campus_organizations_name ON campus_organizations (name);
CREATE INDEX campus_organizations_owner ON campus_organizations (owner_id);

CREATE TABLE campus_managers
(
    id      bigint PRIMARY KEY,
    org_id  bigint NOT NULL,
    user_id bigint NOT NULL,
    UNIQUE (org_id, user_id)
);
CREATE INDEX campus_managers_user ON campus_managers (user_id, org_id);

CREATE TABLE campus_follows
(
    id      bigint PRIMARY KEY,
    org_id  bigint NOT NULL,
    user_id bigint NOT NULL,
    UNIQUE (user_id, org_id)
);
CREATE INDEX campus_follows_org ON campus_follows (org_id);

CREATE TABLE campus_feedbacks
(
    id         bigint      PRIMARY KEY,
    user_id    bigint      NOT NULL,
    feedback   text        NOT NULL,
    contact    text        NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX campus_feedbacks_user ON campus_feedbacks (user_id);

//! Queries on the campus read model (written by [`super::CampusProjection`]), as the API shows
//! it: each row built as JSON by the query itself
//! (nested users and blocks joined, so a profile edit shows everywhere at once), on indexed
//! lookups. `$1` of every query here is the viewer (`Caller::viewer`: who may see openids)
//! and `$2` the time zone the timestamps are shown in.

use serde_json::Value;
use sqlx::PgPool;

/// Which rows of a list: at most `limit` (None: all), after skipping `offset`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub limit: Option<i64>,
    pub offset: i64,
}

/// A link a page may load: an `http(s)` URL, else null. Writes accept nothing else since
/// avatars were checked (`common::is_web_url`); this keeps any stored before from reaching
/// other users' pages.
fn web_url(column: &str) -> String {
    format!("CASE WHEN {column} ~* '^https?://[^[:space:][:cntrl:]]+$' THEN {column} END")
}

/// A user as JSON, from `campus_users` aliased `alias`.
pub fn user_json(alias: &str) -> String {
    format!(
        "json_build_object('id', {a}.id, 'openid', CASE WHEN $1 IN (-1, {a}.id) THEN {a}.openid END, \
         'name', {a}.name, 'avatar', {avatar}, 'email', {a}.email, 'sign', {a}.sign)",
        a = alias,
        avatar = web_url(&format!("{alias}.avatar"))
    )
}

/// A local timestamp with microseconds and no offset (`2021-04-15T11:26:32.396852`).
pub fn local_time(expr: &str) -> String {
    format!("to_char({expr} AT TIME ZONE $2, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')")
}

/// An organisation as JSON (`o`, with its owner `ow` and block `b` joined by [`ORG_JOINS`]).
pub fn org_json() -> String {
    format!(
        "json_build_object('id', o.id, 'name', o.name, 'description', o.description, \
         'create_time', {}, 'avatar', {}, 'owner', {}, \
         'block', json_build_object('id', b.id, 'name', b.name))",
        local_time("o.create_time"),
        web_url("o.avatar"),
        user_json("ow")
    )
}

pub const ORG_JOINS: &str = "JOIN campus_users ow ON ow.id = o.owner_id \
     JOIN campus_blocks b ON b.id = o.block_id";

/// An application as JSON, nested (`a`, `u`, `b`).
pub fn application_json() -> String {
    format!(
        "json_build_object('id', a.id, 'name', a.name, 'description', a.description, \
         'pub_time', {}, 'status', a.status, 'user', {}, \
         'block', json_build_object('id', b.id, 'name', b.name))",
        local_time("a.pub_time"),
        user_json("u")
    )
}

/// Rows of JSON: `select` must select one JSON column and take `$1` viewer, `$2` time zone,
/// `$3` limit (NULL: all), `$4` offset, then `args` from `$5` on.
pub async fn rows(
    pool: &PgPool,
    sql: &str,
    viewer: i64,
    tz: &str,
    window: Window,
    args: &[i64],
) -> sqlx::Result<Vec<Value>> {
    let mut query = sqlx::query_scalar::<_, Value>(sql)
        .bind(viewer)
        .bind(tz)
        .bind(window.limit)
        .bind(window.offset);
    for arg in args {
        query = query.bind(*arg);
    }
    query.fetch_all(pool).await
}

/// One JSON row (or none), with `$1` viewer, `$2` time zone and `$3` the argument.
pub async fn one<'a, T>(
    pool: &PgPool,
    sql: &'a str,
    viewer: i64,
    tz: &'a str,
    arg: T,
) -> sqlx::Result<Option<Value>>
where
    T: 'a + Send + sqlx::Encode<'a, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::query_scalar::<_, Value>(sql)
        .bind(viewer)
        .bind(tz)
        .bind(arg)
        .fetch_optional(pool)
        .await
}

/// How many rows a count query (with `$1` the argument, if any) finds.
pub async fn count(pool: &PgPool, sql: &str, args: &[i64]) -> sqlx::Result<i64> {
    let mut query = sqlx::query_scalar::<_, i64>(sql);
    for arg in args {
        query = query.bind(*arg);
    }
    query.fetch_one(pool).await
}

/// Entry `id` of a catalogue (`table`, shown as `columns`, live where `live` holds) as JSON.
pub async fn catalog_entry(
    pool: &PgPool,
    table: &str,
    columns: &str,
    live: &str,
    id: i64,
) -> sqlx::Result<Option<Value>> {
    sqlx::query_scalar(&format!(
        "SELECT json_build_object({columns}) FROM {table} WHERE id = $1 AND {live}"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Whether application `id` founded an organisation.
pub async fn application_founded(pool: &PgPool, id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM campus_organizations WHERE application_id = $1)")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// The applicant of application `id`, unless it was deleted.
pub async fn application_applicant(pool: &PgPool, id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT user_id FROM campus_applications WHERE id = $1 AND NOT deleted")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The reason application `id` gives, as its applicant wrote it (`(erased)` once they are).
pub async fn application_description(pool: &PgPool, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT description FROM campus_applications WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
}

/// The block application `id` was made in.
pub async fn application_block(pool: &PgPool, id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT block_id FROM campus_applications WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// Pending applications of deleted users (`of`: of that one only): at most 1,000, taken from
/// every deleted user in turn.
pub async fn orphaned_applications(pool: &PgPool, of: Option<i64>) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT a.id FROM campus_applications a JOIN campus_users u ON u.id = a.user_id \
         WHERE u.deleted AND a.status = 0 AND NOT a.deleted AND ($1::bigint IS NULL OR a.user_id = $1) \
         ORDER BY row_number() OVER (PARTITION BY a.user_id ORDER BY a.id), a.id LIMIT 1000",
    )
    .bind(of)
    .fetch_all(pool)
    .await
}

/// The organisation called `name` (exactly), if any.
pub async fn organization_named(pool: &PgPool, name: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM campus_organizations WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// A user's profile as they see it: name, avatar, email, signature.
pub type Profile = (String, Option<String>, Option<String>, Option<String>);

/// Live user `id`'s own profile.
pub async fn profile(pool: &PgPool, id: i64) -> sqlx::Result<Option<Profile>> {
    sqlx::query_as(
        "SELECT name, avatar, email, sign FROM campus_users WHERE id = $1 AND NOT deleted",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A live user's id, if there is one.
pub async fn user_exists(pool: &PgPool, id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM campus_users WHERE id = $1 AND NOT deleted)")
        .bind(id)
        .fetch_one(pool)
        .await
}

/// The stream (application id) of organisation `id`, if it exists.
pub async fn org_stream(pool: &PgPool, id: i64) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT application_id FROM campus_organizations WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// For a follow or an appointment, in one statement: the stream (application id) of
/// organisation `org` if it exists, whether user `person` exists, and, when both do, a new id
/// drawn from `sequence` (ours, a constant). None for either: not asked.
pub async fn org_person_and_id(
    pool: &PgPool,
    org: Option<i64>,
    person: Option<i64>,
    sequence: &'static str,
) -> sqlx::Result<(Option<i64>, bool, Option<i64>)> {
    sqlx::query_as(&format!(
        "WITH o AS (SELECT (SELECT application_id FROM campus_organizations WHERE id = $1) AS stream), \
              p AS (SELECT EXISTS (SELECT FROM campus_users WHERE id = $2 AND NOT deleted) AS found) \
         SELECT o.stream, p.found, \
                CASE WHEN o.stream IS NOT NULL AND p.found THEN nextval('{sequence}') END \
         FROM o, p"
    ))
    .bind(org)
    .bind(person)
    .fetch_one(pool)
    .await
}

/// A list: the rows of `listing` in `window`, and (when the window is limited) the count of
/// all its rows, for a page's links.
pub async fn list(
    pool: &PgPool,
    tz: &str,
    viewer: i64,
    window: Window,
    listing: &Listing,
    args: &[i64],
) -> sqlx::Result<(Vec<Value>, i64)> {
    let found = rows(pool, &listing.select, viewer, tz, window, args).await?;
    let total = if window.limit.is_some() {
        count(pool, &listing.count, args).await?
    } else {
        0
    };
    Ok((found, total))
}

/// Users that are not deleted, as `u`.
pub const USER_SELECT: &str = "FROM campus_users u WHERE NOT u.deleted";

/// The managers (`m`, person `p`) with their organisations, filtered by `filter`.
fn manager_select(filter: &str) -> String {
    format!(
        "SELECT json_build_object('org', {}, 'person', {}) FROM campus_managers m \
         JOIN campus_organizations o ON o.id = m.org_id {ORG_JOINS} \
         JOIN campus_users p ON p.id = m.user_id {filter} \
         ORDER BY m.org_id, m.id LIMIT $3 OFFSET $4",
        org_json(),
        user_json("p")
    )
}

/// A list the API serves: its query (`$1` viewer, `$2` time zone, `$3` limit, `$4` offset,
/// arguments from `$5`) and the count of all its rows (arguments from `$1`). Every one is
/// here, so `every_list_query_uses_an_index_on_a_large_platform` can EXPLAIN them all.
pub struct Listing {
    pub select: String,
    pub count: String,
}

impl Listing {
    pub fn users() -> Self {
        Self {
            select: format!(
                "SELECT {} {USER_SELECT} ORDER BY u.id LIMIT $3 OFFSET $4",
                user_json("u")
            ),
            count: "SELECT count(*) FROM campus_users WHERE NOT deleted".to_string(),
        }
    }
    pub fn managed_with_person() -> Self {
        Self {
            select: format!(
                "SELECT json_build_object('org', {}, 'person', {}) FROM campus_managers m \
             JOIN campus_organizations o ON o.id = m.org_id {ORG_JOINS} \
             JOIN campus_users p ON p.id = m.user_id \
             WHERE m.user_id = $5 ORDER BY m.org_id LIMIT $3 OFFSET $4",
                org_json(),
                user_json("p")
            ),
            count: "SELECT count(*) FROM campus_managers WHERE user_id = $1".to_string(),
        }
    }
    pub fn applications_of_user() -> Self {
        Self {
            select: format!(
                "SELECT {} FROM campus_applications a JOIN campus_users u ON u.id = a.user_id \
             JOIN campus_blocks b ON b.id = a.block_id \
             WHERE a.user_id = $5 AND NOT a.deleted ORDER BY a.id LIMIT $3 OFFSET $4",
                application_json()
            ),
            count: "SELECT count(*) FROM campus_applications WHERE user_id = $1 AND NOT deleted"
                .to_string(),
        }
    }
    pub fn orgs_of(table: &str) -> Self {
        Self {
            select: format!(
                "SELECT json_build_object('org', {}) FROM {table} x \
             JOIN campus_organizations o ON o.id = x.org_id {ORG_JOINS} \
             WHERE x.user_id = $5 ORDER BY x.org_id LIMIT $3 OFFSET $4",
                org_json()
            ),
            count: format!("SELECT count(*) FROM {table} WHERE user_id = $1"),
        }
    }
    /// One application (`$3`), as in the list.
    pub fn application_by_id() -> String {
        format!(
            "SELECT {} FROM campus_applications a JOIN campus_users u ON u.id = a.user_id \
             JOIN campus_blocks b ON b.id = a.block_id WHERE a.id = $3 AND NOT a.deleted",
            application_json()
        )
    }
    /// One organisation by id (`$3`).
    pub fn organization_by_id() -> String {
        format!(
            "SELECT {} FROM campus_organizations o {ORG_JOINS} WHERE o.id = $3",
            org_json()
        )
    }
    /// One organisation by name (`$3`).
    pub fn organization_by_name() -> String {
        format!(
            "SELECT {} FROM campus_organizations o {ORG_JOINS} WHERE o.name = $3",
            org_json()
        )
    }
    pub fn applications() -> Self {
        Self {
            select: format!(
                "SELECT {} FROM campus_applications a JOIN campus_users u ON u.id = a.user_id \
             JOIN campus_blocks b ON b.id = a.block_id \
             WHERE NOT a.deleted ORDER BY a.id LIMIT $3 OFFSET $4",
                application_json()
            ),
            count: "SELECT count(*) FROM campus_applications WHERE NOT deleted".to_string(),
        }
    }
    pub fn organizations() -> Self {
        Self {
            select: format!(
            "SELECT {} FROM campus_organizations o {ORG_JOINS} ORDER BY o.id LIMIT $3 OFFSET $4",
            org_json()
        ),
            count: "SELECT count(*) FROM campus_organizations".to_string(),
        }
    }
    pub fn managers_of_named() -> Self {
        Self {
            select: manager_select("WHERE m.org_id = $5"),
            count: "SELECT count(*) FROM campus_managers WHERE org_id = $1".to_string(),
        }
    }
    pub fn all_managers() -> Self {
        Self {
            select: manager_select(""),
            count: "SELECT count(*) FROM campus_managers".to_string(),
        }
    }
    pub fn persons_managing() -> Self {
        Self {
            select: format!(
                "SELECT json_build_object('person', {}) FROM campus_managers m \
             JOIN campus_users p ON p.id = m.user_id WHERE m.org_id = $5 \
             ORDER BY m.id LIMIT $3 OFFSET $4",
                user_json("p")
            ),
            count: "SELECT count(*) FROM campus_managers WHERE org_id = $1".to_string(),
        }
    }
    pub fn catalog(table: &str, columns: &str, live: &str) -> Self {
        Self {
            select: format!(
                "SELECT json_build_object({columns}) FROM {t} WHERE {live} \
                 ORDER BY id LIMIT $3 OFFSET $4",
                t = table,
                live = live
            ),
            count: format!("SELECT count(*) FROM {} WHERE {}", table, live),
        }
    }
    pub fn orgs_in_block() -> Self {
        Self {
            select: format!(
                "SELECT {} FROM campus_organizations o {ORG_JOINS} WHERE o.block_id = $5 \
             ORDER BY o.id LIMIT $3 OFFSET $4",
                org_json()
            ),
            count: "SELECT count(*) FROM campus_organizations WHERE block_id = $1".to_string(),
        }
    }
    pub fn feedbacks() -> Self {
        Self {
            select: format!(
                "SELECT json_build_object('id', f.id, 'user', f.user_id, 'feedback', f.feedback, \
             'contact', f.contact, 'create_time', {}) FROM campus_feedbacks f \
             ORDER BY f.id LIMIT $3 OFFSET $4",
                local_time("f.created_at")
            ),
            count: "SELECT count(*) FROM campus_feedbacks".to_string(),
        }
    }

    /// Every list with its name and the number of arguments it takes, for EXPLAIN.
    pub fn all() -> Vec<(&'static str, Self, usize)> {
        vec![
            ("users", Self::users(), 0),
            (
                "managed organisations with person",
                Self::managed_with_person(),
                1,
            ),
            ("applications of a user", Self::applications_of_user(), 1),
            ("followed organisations", Self::orgs_of("campus_follows"), 1),
            ("managed organisations", Self::orgs_of("campus_managers"), 1),
            ("applications", Self::applications(), 0),
            ("organisations", Self::organizations(), 0),
            ("managers of an organisation", Self::managers_of_named(), 1),
            ("all managers", Self::all_managers(), 0),
            ("persons managing", Self::persons_managing(), 1),
            (
                "blocks",
                Self::catalog("campus_blocks", "'id', id, 'name', name", "NOT deleted"),
                0,
            ),
            ("organisations of a block", Self::orgs_in_block(), 1),
            ("feedbacks", Self::feedbacks(), 0),
        ]
    }
}

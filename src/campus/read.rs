//! The campus read models as the API shows them: each row built as JSON by the query itself
//! (nested users and blocks joined, so a profile edit shows everywhere at once), on indexed
//! lookups. `$1` of every query here is the viewer (`Caller::viewer`: who may see openids)
//! and `$2` the time zone the timestamps are shown in.

use serde_json::Value;
use sqlx::PgPool;

use super::common::Page;

/// A user as JSON, from `campus_users` aliased `alias`.
pub fn user_json(alias: &str) -> String {
    format!(
        "json_build_object('id', {a}.id, 'openid', CASE WHEN $1 IN (-1, {a}.id) THEN {a}.openid END, \
         'name', {a}.name, 'avatar', {a}.avatar, 'email', {a}.email, 'sign', {a}.sign)",
        a = alias
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
         'create_time', {}, 'avatar', o.avatar, 'owner', {}, \
         'block', json_build_object('id', b.id, 'name', b.name))",
        local_time("o.create_time"),
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
    page: &Page,
    args: &[i64],
) -> sqlx::Result<Vec<Value>> {
    let mut query = sqlx::query_scalar::<_, Value>(sql)
        .bind(viewer)
        .bind(tz)
        .bind(page.sql_limit())
        .bind(page.offset);
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

/// A paged list: the rows of `select`, and with `limit` DRF's page counted by `count_sql`.
pub async fn list(
    app: &crate::App,
    viewer: i64,
    page: &Page,
    select: &str,
    count_sql: &str,
    args: &[i64],
) -> Result<Value, crate::http::ApiError> {
    let tz = app.config.tz.name();
    let found = rows(&app.pool, select, viewer, tz, page, args).await?;
    let total = if page.limit.is_some() {
        count(&app.pool, count_sql, args).await?
    } else {
        0
    };
    Ok(page.answer(found, || total))
}

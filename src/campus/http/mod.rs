//! The campus document's endpoints, by area: each handler reads its body type, calls one use
//! case (`super::service`) or one query (`projections::campus`), and renders the answer in
//! DRF's shapes. `audit.rs` serves the auditors' views to superusers.

mod audit;
mod catalog;
mod feedback;
mod organizations;
mod superusers;
mod users;

use std::sync::Arc;

use projections::campus::read::{self, Listing};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;

use super::auth::Caller;
use super::context::Campus;
use super::fields::{parse_positive, Page};
use crate::http::ApiError;

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    superusers::routes()
        .merge(audit::routes())
        .merge(users::routes())
        .merge(catalog::routes())
        .merge(organizations::routes())
        .merge(feedback::routes())
}

/// A paged list of `listing` for `me`: the rows, or DRF's page when `limit` was given.
async fn list(
    app: &Campus,
    me: &Caller,
    page: &Page,
    listing: &Listing,
    args: &[i64],
) -> Result<Value, ApiError> {
    let (rows, count) = read::list(
        &app.rt.pool,
        app.rt.config.tz.name(),
        me.viewer(),
        page.window(),
        listing,
        args,
    )
    .await?;
    Ok(page.answer(rows, || count))
}

/// A list of the record a path names by id (`raw`): an empty list when it names nothing, as
/// the document's `[]` for an unknown record.
async fn list_of(
    app: &Campus,
    me: &Caller,
    page: &Page,
    listing: &Listing,
    raw: &str,
) -> Result<Value, ApiError> {
    match parse_positive(raw) {
        Some(id) => list(app, me, page, listing, &[id]).await,
        None => Ok(page.answer(vec![], || 0)),
    }
}

/// One row of `sql` (`$3` its argument) as `me` sees it, or None.
async fn one<T>(app: &Campus, me: &Caller, sql: &str, arg: T) -> Result<Option<Value>, ApiError>
where
    T: for<'a> sqlx::Encode<'a, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    Ok(read::one(&app.rt.pool, sql, me.viewer(), app.rt.config.tz.name(), arg).await?)
}

//! The catalogues: `blocks/`, `activities/categories/`, `activities/addresses/` (lists and
//! entries for anyone signed in; writes for superusers, addresses for anyone signed in), and
//! `blocks/orgs/`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::campus::read::Listing;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::list;
use crate::campus::auth::{Caller, Permitted, SignedIn};
use crate::campus::body::{AddressBody, DetailNotFound, NameBody};
use crate::campus::context::Campus;
use crate::campus::fields::{envelope, envelope_error, parse_positive, Page, Query};
use crate::campus::service::catalog::{self, Kind, ADDRESSES, BLOCKS, CATEGORIES};
use crate::http::answers::{BadRetryKey, ReadAnswers, RetryKey, Throttled, WriteAnswers};
use crate::http::{parse_id, ApiError, Body, Segment};

type AppState = State<Arc<Campus>>;

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(blocks, create_block))
        .routes(routes!(block, rename_block, delete_block))
        .routes(routes!(block_orgs))
        .routes(routes!(categories, create_category))
        .routes(routes!(category, rename_category, delete_category))
        .routes(routes!(addresses, create_address))
        .routes(routes!(address, delete_address))
}

async fn entries<K: aggregates::campus::catalog::Catalog>(
    app: &Campus,
    me: &Caller,
    page: &Page,
    kind: &Kind<K>,
) -> Result<Json<Value>, ApiError> {
    let listing = Listing::catalog(kind.table, kind.columns, kind.live());
    Ok(Json(list(app, me, page, &listing, &[]).await?))
}

async fn entry<K: aggregates::campus::catalog::Catalog>(
    app: &Campus,
    kind: &Kind<K>,
    id: &str,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(catalog::entry(app, kind, parse_id(id)?).await?))
}

fn created(entry: Value) -> Response {
    (StatusCode::CREATED, Json(entry)).into_response()
}

// ---- blocks ---------------------------------------------------------------------------------

#[utoipa::path(get, path = "/blocks", tag = "campus", summary = "Every block",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "`[{id, name}]`", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        SignedIn, ReadAnswers))]
async fn blocks(State(app): AppState, me: Caller, page: Page) -> Result<Json<Value>, ApiError> {
    entries(&app, &me, &page, &BLOCKS).await
}

#[utoipa::path(get, path = "/blocks/{id}", tag = "campus", summary = "One block",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "`{id, name}`", body = Object),
              (status = 404, description = "No such block", body = DetailNotFound),
              SignedIn, ReadAnswers))]
async fn block(
    State(app): AppState,
    _: Caller,
    Segment(id): Segment,
) -> Result<Json<Value>, ApiError> {
    entry(&app, &BLOCKS, &id).await
}

#[utoipa::path(post, path = "/blocks", tag = "campus", summary = "Create a block (superusers)",
    security(("jwt" = [])), params(RetryKey),
    request_body(content((NameBody = "application/json"), (NameBody = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "`{id, name}`", body = Object),
              (status = 400, description = "Name missing, blank or taken", body = Object, example = json!({"name": ["具有 版块名称 的 block 已存在。"]})),
              Permitted, Throttled, WriteAnswers))]
async fn create_block(
    State(app): AppState,
    me: Caller,
    Body(body): Body<NameBody>,
) -> Result<Response, ApiError> {
    Ok(created(BLOCKS.create(&app, &me, &body).await?))
}

#[utoipa::path(put, path = "/blocks/{id}", tag = "campus", summary = "Rename a block (superusers)",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    request_body(content((NameBody = "application/json"), (NameBody = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "`{id, name}`", body = Object),
              (status = 400, description = "Name missing, blank, taken or unchanged", body = Object, example = json!({"block": ["板块名称重复"]})),
              (status = 404, description = "No such block", body = DetailNotFound),
              Permitted, Throttled, WriteAnswers))]
async fn rename_block(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    Body(body): Body<NameBody>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(BLOCKS.rename(&app, &me, parse_id(&id)?, &body).await?))
}

#[utoipa::path(delete, path = "/blocks/{id}", tag = "campus", summary = "Delete a block (superusers)",
    description = "Organisations in it keep showing it; no new application may name it.",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such block", body = DetailNotFound),
              Permitted, Throttled, BadRetryKey, WriteAnswers))]
async fn delete_block(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    BLOCKS.delete(&app, &me, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/blocks/orgs", tag = "campus", summary = "The organisations of a block (?block=), in the envelope",
    security(("jwt" = [])),
    params(("block" = i64, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "The envelope; `status: 1` for an unknown block", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        SignedIn, ReadAnswers))]
async fn block_orgs(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    let block = query.get("block").and_then(parse_positive);
    let Some(block) = block else {
        return Ok(Json(envelope_error("invalid block")));
    };
    if !catalog::block_exists(&app, block).await? {
        return Ok(Json(envelope_error("invalid block")));
    }
    let found = list(&app, &me, &page, &Listing::orgs_in_block(), &[block]).await?;
    Ok(Json(envelope(found)))
}

// ---- activity categories ------------------------------------------------------------------

#[utoipa::path(get, path = "/activities/categories", tag = "campus", summary = "Every activity category",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "`[{id, name}]`", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        SignedIn, ReadAnswers))]
async fn categories(State(app): AppState, me: Caller, page: Page) -> Result<Json<Value>, ApiError> {
    entries(&app, &me, &page, &CATEGORIES).await
}

#[utoipa::path(get, path = "/activities/categories/{id}", tag = "campus", summary = "One activity category",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "`{id, name}`", body = Object),
              (status = 404, description = "No such category", body = DetailNotFound),
              SignedIn, ReadAnswers))]
async fn category(
    State(app): AppState,
    _: Caller,
    Segment(id): Segment,
) -> Result<Json<Value>, ApiError> {
    entry(&app, &CATEGORIES, &id).await
}

#[utoipa::path(post, path = "/activities/categories", tag = "campus", summary = "Create a category (superusers)",
    security(("jwt" = [])), params(RetryKey),
    request_body(content((NameBody = "application/json"), (NameBody = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "`{id, name}`", body = Object),
              (status = 400, description = "Name missing, blank or taken", body = Object, example = json!({"name": ["具有 分类名称 的 category 已存在。"]})),
              Permitted, Throttled, WriteAnswers))]
async fn create_category(
    State(app): AppState,
    me: Caller,
    Body(body): Body<NameBody>,
) -> Result<Response, ApiError> {
    Ok(created(CATEGORIES.create(&app, &me, &body).await?))
}

#[utoipa::path(put, path = "/activities/categories/{id}", tag = "campus", summary = "Rename a category (superusers)",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    request_body(content((NameBody = "application/json"), (NameBody = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "`{id, name}`", body = Object),
              (status = 400, description = "Name missing, blank, taken or unchanged", body = Object, example = json!({"category": ["分类名称重复"]})),
              (status = 404, description = "No such category", body = DetailNotFound),
              Permitted, Throttled, WriteAnswers))]
async fn rename_category(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    Body(body): Body<NameBody>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        CATEGORIES.rename(&app, &me, parse_id(&id)?, &body).await?,
    ))
}

#[utoipa::path(delete, path = "/activities/categories/{id}", tag = "campus", summary = "Delete a category (superusers)",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such category", body = DetailNotFound),
              Permitted, Throttled, BadRetryKey, WriteAnswers))]
async fn delete_category(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    CATEGORIES.delete(&app, &me, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- activity addresses -------------------------------------------------------------------

#[utoipa::path(get, path = "/activities/addresses", tag = "campus", summary = "Every activity address",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses((status = 200, description = "`[{id, name, longitude, latitude}]`", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        SignedIn, ReadAnswers))]
async fn addresses(State(app): AppState, me: Caller, page: Page) -> Result<Json<Value>, ApiError> {
    entries(&app, &me, &page, &ADDRESSES).await
}

#[utoipa::path(get, path = "/activities/addresses/{id}", tag = "campus", summary = "One activity address",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "`{id, name, longitude, latitude}`", body = Object),
              (status = 404, description = "No such address", body = DetailNotFound),
              SignedIn, ReadAnswers))]
async fn address(
    State(app): AppState,
    _: Caller,
    Segment(id): Segment,
) -> Result<Json<Value>, ApiError> {
    entry(&app, &ADDRESSES, &id).await
}

#[utoipa::path(post, path = "/activities/addresses", tag = "campus", summary = "Create an activity address (users and superusers)",
    security(("jwt" = [])), params(RetryKey),
    request_body(content((AddressBody = "application/json"), (AddressBody = "application/x-www-form-urlencoded"))),
    responses((status = 201, description = "`{id, name, longitude, latitude}`", body = Object),
              (status = 400, description = "A field missing or bad, the name or the place taken", body = Object, example = json!({"address": ["地点重复。"]})),
              SignedIn, Throttled, WriteAnswers))]
async fn create_address(
    State(app): AppState,
    me: Caller,
    Body(body): Body<AddressBody>,
) -> Result<Response, ApiError> {
    Ok(created(catalog::create_address(&app, &me, &body).await?))
}

#[utoipa::path(delete, path = "/activities/addresses/{id}", tag = "campus", summary = "Delete an activity address (superusers)",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such address", body = DetailNotFound),
              Permitted, Throttled, BadRetryKey, WriteAnswers))]
async fn delete_address(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    ADDRESSES.delete(&app, &me, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

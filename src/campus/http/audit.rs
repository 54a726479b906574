//! The auditors' views over HTTP, for campus superusers only: the history in log order, a
//! record as it stood at a moment, and a record's history with the state after each event.
//! The same code as the CLI's (`runtime::audit`); personal values opened, `(erased)` where their
//! key was destroyed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::campus::auth::{CurrentSuperuser, Permitted};
use crate::campus::context::Campus;
use crate::http::ApiError;
use runtime::audit::{self, Filter, RecordError};

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(record))
        .routes(routes!(history))
}

const MAX_PAGE: i64 = 1000;

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::detail(StatusCode::BAD_REQUEST, reason)
}

fn query(raw: Option<String>) -> Result<HashMap<String, String>, ApiError> {
    let params: HashMap<String, String> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|_| bad("the query string is malformed"))?;
    if params.values().any(|v| v.contains('\0') || v.len() > 1000) {
        return Err(bad("a parameter holds a NUL character or is too long"));
    }
    Ok(params)
}

fn as_of(
    params: &HashMap<String, String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    use chrono::Datelike;
    let Some(text) = params.get("as_of") else {
        return Ok(None);
    };
    let when = audit::parse_time(text).map_err(bad)?;
    if !(1..=9999).contains(&when.year()) {
        return Err(bad("as_of must be between the years 1 and 9999"));
    }
    Ok(Some(when))
}

/// A record's type and id from the path (a NUL or an unreadable segment is no record).
fn record_path(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    match path {
        Ok(Path((t, id))) if !t.contains('\0') && !id.contains('\0') => Ok((t, id)),
        _ => Err(not_found()),
    }
}

/// History pages: states can be large (the roster's holds every member).
const MAX_HISTORY_PAGE: usize = 100;

/// A record of the log: its aggregate type and id.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built: the handlers read the path themselves
struct RecordPath {
    /// Roster, MemberAbsences, Superuser, CampusUser, Organization, Block, ActivityCategory,
    /// ActivityAddress, Feedback
    aggregate_type: String,
    aggregate_id: String,
}

#[utoipa::path(get, path = "/audit/events", tag = "audit",
    summary = "The history of the whole store, in log order (superusers)",
    security(("jwt" = [])),
    params(
        ("after" = Option<i64>, Query, description = "Only events after the one at this position (the `next` of the previous page)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Events per page: 1 to 1000, 100 by default"),
        ("aggregate_type" = Option<String>, Query, description = "e.g. MemberAbsences"),
        ("aggregate_id" = Option<String>, Query),
    ),
    responses(
        (status = 200, description = "`events`: the CLI's fields; `next`: the `after` of the next page, null on the last", body = Object,
         example = json!({"events": [{"position": 1, "transaction_id": 741, "aggregate_type": "Roster", "aggregate_id": "orchestra", "sequence": 1, "event_type": "MemberEnrolled", "event_version": "2.0", "payload": {"MemberEnrolled": {"member_id": 1, "name": "David", "section": "stringed", "role": "member"}}, "metadata": {"actor": "root", "actor_kind": "operator", "channel": "cli", "request_id": "cli-1f0c"}, "recorded_at": "2026-03-10T08:00:00.000000Z"}], "next": null})),
        (status = 400, description = "A bad parameter, with the reason", body = crate::campus::body::Detail),
        Permitted,
    ))]
async fn events(
    State(app): State<Arc<Campus>>,
    _: CurrentSuperuser,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = query(raw)?;
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| bad(format!("{name} must be an integer")))
            })
            .transpose()
    };
    let limit = number("limit")?.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let after = number("after")?;
    if after.is_some_and(|a| a < 0) {
        return Err(bad("after must not be negative"));
    }
    let filter = Filter {
        aggregate_type: params.get("aggregate_type").cloned(),
        aggregate_id: params.get("aggregate_id").cloned(),
        after,
        limit,
    };
    let events = audit::events(&app.rt.pool, &filter).await?;
    let next = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.position))
        .flatten();
    Ok(Json(json!({
        "events": events.iter().map(audit::event_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

fn record_error(e: RecordError) -> ApiError {
    match e {
        RecordError::UnknownType(..) => bad(e.to_string()),
        RecordError::Database(e) => e.into(),
        RecordError::Unreadable(e) => ApiError::internal(e),
    }
}

fn not_found() -> ApiError {
    ApiError::detail(StatusCode::NOT_FOUND, "未找到。")
}

#[utoipa::path(get, path = "/audit/{aggregate_type}/{aggregate_id}", tag = "audit",
    summary = "A record as it stands, or as it stood at `as_of` (superusers)",
    security(("jwt" = [])),
    params(
        RecordPath,
        ("as_of" = Option<String>, Query, description = "RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC) or a date (its end)"),
    ),
    responses(
        (status = 200, description = "The state rebuilt from its events up to then", body = Object,
         example = json!({"aggregate_type": "MemberAbsences", "aggregate_id": "3", "as_of": null, "sequence": 2, "state": {"active": {}}})),
        (status = 400, description = "An unknown type or a bad time, with the reason", body = crate::campus::body::Detail),
        Permitted,
        (status = 404, description = "No such record (at that time)", body = crate::campus::body::Detail),
    ))]
async fn record(
    State(app): State<Arc<Campus>>,
    _: CurrentSuperuser,
    record_path_in: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (aggregate_type, aggregate_id) = record_path(record_path_in)?;
    let when = as_of(&query(raw)?)?;
    let (state, events) = audit::record(&app.rt.pool, &aggregate_type, &aggregate_id, when)
        .await
        .map_err(record_error)?;
    let Some(last) = events.last() else {
        return Err(not_found());
    };
    Ok(Json(json!({
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "as_of": when.map(|t| t.to_rfc3339()),
        "sequence": last.sequence,
        "state": state,
    })))
}

#[utoipa::path(get, path = "/audit/{aggregate_type}/{aggregate_id}/history", tag = "audit",
    summary = "A record's events, each with the state after it, in pages (superusers)",
    security(("jwt" = [])),
    params(
        RecordPath,
        ("offset" = Option<i64>, Query, minimum = 0, description = "The first event's index (0 by default)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Events per page: 1 to 100, 20 by default"),
    ),
    responses(
        (status = 200, description = "`history`: each event (the CLI's fields) with `state` after it; `count`: events in all; `next`: the next page's offset, null on the last", body = Object),
        (status = 400, description = "An unknown type, with the reason", body = crate::campus::body::Detail),
        Permitted,
        (status = 404, description = "No such record", body = crate::campus::body::Detail),
    ))]
async fn history(
    State(app): State<Arc<Campus>>,
    _: CurrentSuperuser,
    record_path_in: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (aggregate_type, aggregate_id) = record_path(record_path_in)?;
    let params = query(raw)?;
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        params.get(name).map_or(Ok(default), |v| {
            v.parse::<usize>()
                .map_err(|_| bad(format!("{name} must be a non-negative integer")))
        })
    };
    let offset = number("offset", 0)?;
    let limit = number("limit", 20)?;
    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
        return Err(bad(format!(
            "limit must be between 1 and {MAX_HISTORY_PAGE}"
        )));
    }
    let (steps, total) = audit::history(
        &app.rt.pool,
        &aggregate_type,
        &aggregate_id,
        offset..offset.saturating_add(limit),
    )
    .await
    .map_err(record_error)?;
    if total == 0 {
        return Err(not_found());
    }
    Ok(Json(json!({
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "count": total,
        "next": (offset.saturating_add(limit) < total).then(|| offset + limit),
        "history": steps
            .iter()
            .map(|(event, state)| json!({ "event": audit::event_json(event), "state": state }))
            .collect::<Vec<_>>(),
    })))
}

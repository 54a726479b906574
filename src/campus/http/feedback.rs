//! `POST /feedbacks/` (users) and `GET /feedbacks/` (superusers).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::campus::read::Listing;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::campus::auth::{Caller, Permitted};
use crate::campus::body::FeedbackBody;
use crate::campus::context::Campus;
use crate::campus::fields::Page;
use crate::campus::service::feedback;
use crate::http::answers::{ReadAnswers, RetryKey, Throttled, WriteAnswers};
use crate::http::{ApiError, Body};

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new().routes(routes!(submit, list))
}

#[utoipa::path(post, path = "/feedbacks", tag = "campus",
    summary = "A user sends feedback and how to reach them",
    security(("jwt" = [])),
    params(RetryKey),
    request_body(content((FeedbackBody = "application/json"), (FeedbackBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Received", body = Object, example = json!({"success": true, "msg": "upload feedback succeed"})),
        (status = 400, description = "`feedback` missing or blank", body = Object, example = json!({"feedback": ["该字段是必填项。"]})),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn submit(
    State(app): State<Arc<Campus>>,
    me: Caller,
    Body(body): Body<FeedbackBody>,
) -> Result<Response, ApiError> {
    feedback::submit(&app, &me, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "msg": "upload feedback succeed"})),
    )
        .into_response())
}

#[utoipa::path(get, path = "/feedbacks", tag = "campus",
    summary = "Every feedback (superusers)",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "`[{id, user, feedback, contact, create_time}]`", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        Permitted, ReadAnswers,
    ))]
async fn list(
    State(app): State<Arc<Campus>>,
    me: Caller,
    page: Page,
) -> Result<Json<serde_json::Value>, ApiError> {
    me.superuser()?;
    Ok(Json(
        super::list(&app, &me, &page, &Listing::feedbacks(), &[]).await?,
    ))
}

//! Feedback: users send it (sealed with their key: their own words), superusers read it.

use std::sync::Arc;

use aggregates::campus::feedback::SubmitFeedback;
use aggregates::campus::users::user_subject;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::common::{command_failed, next_id, Fields, Page, MAX_TEXT};
use super::read;
use super::Campus;
use crate::http::{ApiError, Input};

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new().routes(routes!(submit, list))
}

#[utoipa::path(post, path = "/feedbacks", tag = "campus",
    summary = "A user sends feedback and how to reach them",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Received", body = Object, example = json!({"success": true, "msg": "upload feedback succeed"})),
        (status = 400, description = "`feedback` missing or blank", body = Object, example = json!({"feedback": ["该字段是必填项。"]})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Not a user", body = Object),
    ))]
async fn submit(
    State(app): State<Arc<Campus>>,
    me: Caller,
    input: Input,
) -> Result<Response, ApiError> {
    let user = me.user().ok_or_else(super::auth::forbidden)?;
    let mut fields = Fields::default();
    let feedback = fields.text(&input, "feedback", true, MAX_TEXT, false);
    let contact = fields.text(&input, "contact", false, 200, true);
    fields.check()?;
    let subject = user_subject(user);
    // Erased, with a token that outlived them for a moment: 401 as for any dead token.
    let key = app.rt.keys.key(&subject).await.map_err(|e| match e {
        runtime::personal::KeyError::Forgotten => super::auth::invalid_token(),
        e => e.into(),
    })?;
    let id = next_id(&app, "campus_feedback_id_seq").await?;
    let seal = |v: &str| runtime::personal::seal(&subject, &key, v);
    let command = SubmitFeedback {
        feedback_id: id,
        user_id: user,
        feedback: seal(&feedback.unwrap_or_default()),
        contact: seal(&contact.unwrap_or_default()),
    };
    app.feedback
        .execute(&id.to_string(), command, &me.actor)
        .await
        .map_err(command_failed)?;
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
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Not a superuser", body = Object),
    ))]
async fn list(
    State(app): State<Arc<Campus>>,
    me: Caller,
    page: Page,
) -> Result<Response, ApiError> {
    me.superuser()?;
    let list = read::list(&app, me.viewer(), &page, &read::Listing::feedbacks(), &[]).await?;
    Ok(Json(list).into_response())
}

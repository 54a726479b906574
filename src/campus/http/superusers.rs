//! `POST /adminLogIn/` (anyone, limited) and `POST /register/` (superusers).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::campus::auth::{Claims, CurrentSuperuser, Permitted, SUPERUSER};
use crate::campus::body::{AdminLoginAnswer, AdminLoginBody, AdminUser, InvalidUser, RegisterBody};
use crate::campus::context::{Campus, AUDIENCE};
use crate::campus::service::superusers::{self, RegisterError};
use crate::http::answers::{ReadAnswers, RetryKey, Throttled, WriteAnswers};
use crate::http::schema::Message;
use crate::http::{naming_others, ApiError, Body};

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(admin_login))
        .routes(routes!(register))
}

fn invalid_user() -> ApiError {
    ApiError::Body(
        StatusCode::UNAUTHORIZED,
        json!({"success": "false", "mess": "Invalid User"}),
    )
}

#[utoipa::path(post, path = "/adminLogIn", tag = "campus",
    summary = "A superuser logs in",
    description = "Rate-limited (429 with Retry-After): attempts per client address, failures per username from one address, and failures per username from anywhere (past that ceiling an address that has not failed is still heard, so strangers cannot lock the rightful superuser out).",
    request_body(content(
        (AdminLoginBody = "application/json"),
        (AdminLoginBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in", body = AdminLoginAnswer),
        (status = 400, description = "A malformed body, or a field that is not text", body = crate::campus::body::Detail),
        (status = 401, description = "Unknown username, wrong password or disabled", body = InvalidUser),
        (status = 413, description = "Body over 64 KiB", body = Message),
        Throttled, ReadAnswers,
    ))]
async fn admin_login(
    State(app): State<Arc<Campus>>,
    extensions: axum::http::Extensions,
    Body(body): Body<AdminLoginBody>,
) -> Result<Response, ApiError> {
    let username = body.username.text("username")?.unwrap_or_default();
    let password = body.password.text("password")?.unwrap_or_default();
    let limits = &app.rt.limits;
    let attempt = limits
        .login_attempt(
            &app.rt.keys,
            crate::http::client_address(&extensions),
            "admin-login-name",
            Some(&username),
        )
        .await?;
    match superusers::log_in(&app, &username, password).await? {
        Some((id, username)) => {
            limits.login_cleared(&attempt).await;
            let token = app.rt.jwt.issue(
                AUDIENCE,
                Claims {
                    sub: id,
                    kind: SUPERUSER.into(),
                },
            );
            Ok(Json(AdminLoginAnswer {
                success: "true",
                user: AdminUser { username },
                token: Some(token),
            })
            .into_response())
        }
        None => {
            limits.login_failed(&attempt).await;
            Err(invalid_user())
        }
    }
}

#[utoipa::path(post, path = "/register", tag = "campus",
    summary = "A superuser creates another superuser",
    security(("jwt" = [])),
    params(RetryKey),
    request_body(content(
        (RegisterBody = "application/json"),
        (RegisterBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Created", body = AdminLoginAnswer, example = json!({"success": "true", "user": {"username": "Jessica"}})),
        (status = 400, description = "A field is missing or bad, or the username taken", body = Object, example = json!({"username": ["已存在一位使用该名字的用户。"]})),
        Permitted, WriteAnswers,
    ))]
async fn register(
    State(app): State<Arc<Campus>>,
    me: CurrentSuperuser,
    Body(body): Body<RegisterBody>,
) -> Result<Response, ApiError> {
    let mut missing = serde_json::Map::new();
    let mut get = |field: &crate::http::Field, name: &str| -> Result<String, ApiError> {
        let value = field.text(name)?.unwrap_or_default();
        if value.trim().is_empty() {
            missing.insert(name.into(), json!(["该字段是必填项。"]));
        }
        Ok(value)
    };
    let username = get(&body.username, "username")?;
    let password = get(&body.password, "password")?;
    let email = get(&body.email, "email")?;
    if !missing.is_empty() {
        return Err(ApiError::Body(StatusCode::BAD_REQUEST, missing.into()));
    }
    match superusers::register(&app, &username, &email, &password, &me.actor).await {
        // The answer names the new superuser.
        Ok(_) => Ok(naming_others((
            StatusCode::CREATED,
            Json(AdminLoginAnswer {
                success: "true",
                user: AdminUser {
                    username: username.trim().to_string(),
                },
                token: None,
            }),
        ))),
        Err(RegisterError::Fields(body)) => Err(ApiError::Body(StatusCode::BAD_REQUEST, body)),
        Err(RegisterError::Other(e)) => Err(ApiError::internal(e)),
    }
}

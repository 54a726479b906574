//! Superusers: created from the CLI (`ensemble admin create`) or by another superuser
//! (`POST /register/`), logging in with `POST /adminLogIn/`. Passwords are hashed with
//! argon2id (salted, slow) on a blocking thread; the hash goes to `credentials`, never into an
//! event, a log line or an answer. A login for an unknown username verifies against a dummy
//! hash, so it costs what a wrong password costs.

use std::sync::{Arc, OnceLock};

use aggregates::campus::superusers::{
    superuser_subject, SuperuserCommand, SuperuserError, USERNAME_SCOPE,
};
use aggregates::orchestra::EmailAddress;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Claims, CurrentSuperuser, SUPERUSER};
use super::Campus;
use super::AUDIENCE;
use crate::http::ApiError;
use crate::http::Input;
use runtime::bus::{Actor, CommandError};

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(admin_login))
        .routes(routes!(register_route))
}

const MAX_USERNAME: usize = 150;
const MIN_PASSWORD: usize = 6;
const MAX_PASSWORD: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// DRF-shaped field errors.
    #[error("{0}")]
    Fields(serde_json::Value),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn field(name: &str, message: &str) -> RegisterError {
    RegisterError::Fields(json!({ name: [message] }))
}

fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

/// Register a superuser; returns their id.
pub async fn register(
    app: &Campus,
    username: &str,
    email: &str,
    password: &str,
    actor: &Actor,
) -> Result<String, RegisterError> {
    let username = username.trim();
    if username.is_empty() {
        return Err(field("username", "该字段不能为空。"));
    }
    if username.chars().count() > MAX_USERNAME
        || username.chars().any(char::is_control)
        || aggregates::text::hidden_character(username).is_some()
    {
        return Err(field(
            "username",
            "请确保这个字段不超过 150 个字符，且不含控制字符。",
        ));
    }
    let email = EmailAddress::parse(email).map_err(|_| field("email", "请输入合法的邮件地址。"))?;
    if password.chars().count() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(field("password", "密码至少 6 个字符。"));
    }
    let keys = &app.rt.keys;
    if keys
        .owner(USERNAME_SCOPE, keys.blind(USERNAME_SCOPE, username))
        .await
        .map_err(anyhow::Error::from)?
        .is_some()
    {
        return Err(field("username", "已存在一位使用该名字的用户。"));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let subject = superuser_subject(&id);
    let password = password.to_string();
    let password_hash = tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(anyhow::Error::from)?;
    let key = keys.create(&subject).await.map_err(anyhow::Error::from)?;
    let command = SuperuserCommand::Register {
        username: keys.seal_unique_with(&subject, &key, USERNAME_SCOPE, username),
        email: runtime::personal::seal(&subject, &key, email.as_str()),
        password_hash,
    };
    match app.superusers.execute(&id, command, actor).await {
        Ok(_) => Ok(id),
        // Someone registered the name meanwhile.
        Err(CommandError::Duplicate) => Err(field("username", "已存在一位使用该名字的用户。")),
        Err(e) => Err(RegisterError::Other(anyhow::anyhow!("{e}"))),
    }
}

/// The active superuser called `username`, by the reservation of the name.
/// The superuser called `username` (active or not), by the reservation of the name.
pub async fn superuser_named(app: &Campus, username: &str) -> anyhow::Result<Option<String>> {
    let keys = &app.rt.keys;
    let owner = keys
        .owner(USERNAME_SCOPE, keys.blind(USERNAME_SCOPE, username.trim()))
        .await?;
    Ok(owner.and_then(|o| o.strip_prefix("campus-superuser:").map(str::to_string)))
}

/// Disable a superuser: their tokens stop working once the read model holds it. Returns the
/// event's position.
pub async fn disable(
    app: &Campus,
    id: &str,
    actor: &Actor,
) -> anyhow::Result<Option<runtime::runner::LogPosition>> {
    let committed = app
        .superusers
        .execute(id, SuperuserCommand::Disable, actor)
        .await
        .map_err(|e| match e {
            CommandError::Rejected(SuperuserError::Disabled) => {
                anyhow::anyhow!("this superuser is disabled already")
            }
            e => anyhow::anyhow!("{e}"),
        })?;
    Ok(committed.position)
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct SuperuserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    pub active: bool,
    pub registered_at: chrono::DateTime<chrono::Utc>,
}

pub async fn list(app: &Campus) -> sqlx::Result<Vec<SuperuserRow>> {
    sqlx::query_as(
        "SELECT id, username, email, active, registered_at FROM campus_superusers \
         ORDER BY registered_at, id",
    )
    .fetch_all(&app.rt.pool)
    .await
}

/// A hash of a password nobody has, to verify against when the username is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash(&uuid::Uuid::new_v4().to_string()))
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
        (crate::campus::schema::AdminLogin = "application/json"),
        (crate::campus::schema::AdminLogin = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in", body = crate::campus::schema::AdminLoginAnswer),
        (status = 400, description = "A field is not text", body = crate::http::schema::Message),
        (status = 401, description = "Unknown username, wrong password or disabled", body = crate::campus::schema::InvalidUser),
        (status = 413, description = "Body over 64 KiB", body = crate::http::schema::Message),
        (status = 429, description = "Too many attempts; see Retry-After", body = crate::http::schema::Message),
        (status = 503, description = "Busy; try again", body = crate::http::schema::Message),
    ))]
async fn admin_login(
    State(app): State<Arc<Campus>>,
    extensions: axum::http::Extensions,
    input: Input,
) -> Result<Response, ApiError> {
    let username = input.text("username")?.unwrap_or_default();
    let password = input.text("password")?.unwrap_or_default();
    let attempt = app
        .rt
        .limits
        .login_attempt(
            &app.rt.keys,
            crate::http::client_address(&extensions),
            "admin-login-name",
            Some(&username),
        )
        .await?;
    let found: Option<(String, String, String, bool)> = match superuser_named(&app, &username)
        .await
        .map_err(ApiError::internal)?
    {
        Some(id) => {
            sqlx::query_as(
                "SELECT s.id, s.username, c.hash, s.active FROM campus_superusers s \
             JOIN credentials c ON c.subject = $2 WHERE s.id = $1",
            )
            .bind(&id)
            .bind(superuser_subject(&id))
            .fetch_optional(&app.rt.pool)
            .await?
        }
        None => None,
    };
    let stored = found
        .as_ref()
        .map_or_else(|| dummy_hash().to_string(), |f| f.2.clone());
    let verified = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(ApiError::internal)?;
    match found {
        Some((id, username, _, true)) if verified => {
            app.rt.limits.login_cleared(&attempt).await;
            let token = app.rt.jwt.issue(
                AUDIENCE,
                Claims {
                    sub: id,
                    kind: SUPERUSER.into(),
                },
            );
            Ok(Json(json!({
                "success": "true",
                "user": { "username": username },
                "token": token,
            }))
            .into_response())
        }
        _ => {
            app.rt.limits.login_failed(&attempt).await;
            Err(invalid_user())
        }
    }
}

#[utoipa::path(post, path = "/register", tag = "campus",
    summary = "A superuser creates another superuser",
    security(("jwt" = [])),
    request_body(content(
        (crate::campus::schema::Register = "application/json"),
        (crate::campus::schema::Register = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Created", body = crate::campus::schema::AdminLoginAnswer, example = json!({"success": "true", "user": {"username": "Jessica"}})),
        (status = 400, description = "A field is missing or bad, or the username taken", body = Object, example = json!({"username": ["已存在一位使用该名字的用户。"]})),
        (status = 401, description = "No or a bad token", body = crate::campus::schema::Detail),
        (status = 403, description = "Not a superuser", body = crate::campus::schema::Detail),
        (status = 409, description = "A request with this Idempotency-Key is still running", body = crate::http::schema::Message),
        (status = 413, description = "Body over 64 KiB", body = crate::http::schema::Message),
        (status = 422, description = "The Idempotency-Key was used for another request", body = crate::http::schema::Message),
        (status = 503, description = "Busy; try again", body = crate::http::schema::Message),
    ))]
async fn register_route(
    State(app): State<Arc<Campus>>,
    me: CurrentSuperuser,
    _headers: HeaderMap,
    input: Input,
) -> Result<Response, ApiError> {
    let mut missing = serde_json::Map::new();
    let mut get = |name: &str| -> Result<String, ApiError> {
        let value = input.text(name)?.unwrap_or_default();
        if value.trim().is_empty() {
            missing.insert(name.into(), json!(["该字段是必填项。"]));
        }
        Ok(value)
    };
    let username = get("username")?;
    let password = get("password")?;
    let email = get("email")?;
    if !missing.is_empty() {
        return Err(ApiError::Body(StatusCode::BAD_REQUEST, missing.into()));
    }
    match register(&app, &username, &email, &password, &me.actor).await {
        // The answer names the new superuser.
        Ok(_) => Ok(crate::http::naming_others(
            (
                StatusCode::CREATED,
                Json(json!({"success": "true", "user": {"username": username.trim()}})),
            )
                .into_response(),
        )),
        Err(RegisterError::Fields(body)) => Err(ApiError::Body(StatusCode::BAD_REQUEST, body)),
        Err(RegisterError::Other(e)) => Err(ApiError::internal(e)),
    }
}

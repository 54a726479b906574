//! Superusers: created from the CLI (`ensemble admin create`) or by another superuser
//! (`POST /register/`), logging in with `POST /adminLogIn/`. Passwords are hashed with
//! argon2id (salted, slow) on a blocking thread; the hash goes to `credentials`, never into an
//! event, a log line or an answer. A login for an unknown username verifies against a dummy
//! hash, so it costs what a wrong password costs.

use std::sync::OnceLock;

use aggregates::campus::superusers::{
    superuser_subject, SuperuserCommand, SuperuserError, USERNAME_SCOPE,
};
use aggregates::orchestra::EmailAddress;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde_json::json;

use crate::campus::context::Campus;
use crate::http::ApiError;
use runtime::bus::{Actor, CommandError};

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

/// A hash of a password nobody has, to verify against when the username is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash(&uuid::Uuid::new_v4().to_string()))
}

/// The superuser `username` logging in with `password`: their id and username, or None (an
/// unknown username is verified against a dummy hash, so it costs what a wrong password does).
pub async fn log_in(
    app: &Campus,
    username: &str,
    password: String,
) -> Result<Option<(String, String)>, ApiError> {
    let found: Option<(String, String, String, bool)> = match superuser_named(app, username)
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
    Ok(match found {
        Some((id, username, _, true)) if verified => Some((id, username)),
        _ => None,
    })
}

/// Every superuser, active or not.
pub async fn list(
    app: &Campus,
) -> sqlx::Result<Vec<projections::campus::superusers::SuperuserRow>> {
    projections::campus::superusers::all(&app.rt.pool).await
}

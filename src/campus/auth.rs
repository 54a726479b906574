//! Who is calling a campus endpoint: a superuser verified by token and by the read model as it
//! is now (a disabled superuser's tokens stop working at once). Answers in DRF's shapes.

use std::sync::{Arc, LazyLock};

use aggregates::campus::superusers::superuser_subject;
use aggregates::campus::users::user_subject;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::context::Campus;
use super::context::AUDIENCE;
use crate::http::ApiError;
use crate::http::{bearer_token, http_actor};
use runtime::answers::{ReadModels, READ_MODELS};
use runtime::bus::Actor;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The superuser's id.
    pub sub: String,
    /// `superuser` or `user`.
    pub kind: String,
}

pub const SUPERUSER: &str = "superuser";
pub const USER: &str = "user";

pub fn no_credentials() -> ApiError {
    ApiError::detail(StatusCode::UNAUTHORIZED, "身份认证信息未提供。")
}

pub fn invalid_token() -> ApiError {
    ApiError::detail(StatusCode::UNAUTHORIZED, "认证令牌无效。")
}

pub fn forbidden() -> ApiError {
    ApiError::detail(StatusCode::FORBIDDEN, "您没有执行该操作的权限。")
}

/// What any campus route answers without a valid token.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built: the errors are ApiError's
pub enum SignedIn {
    /// No token (`身份认证信息未提供。`), or a bad, expired or dead one (`认证令牌无效。`).
    #[response(status = 401, example = json!({"detail": "身份认证信息未提供。"}))]
    Unauthorized(#[to_schema] super::body::Detail),
}

/// What a campus route answers without a valid token, or to a caller it is not for.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built: the errors are ApiError's
pub enum Permitted {
    /// No token, or a bad, expired or dead one.
    #[response(status = 401, example = json!({"detail": "身份认证信息未提供。"}))]
    Unauthorized(#[to_schema] super::body::Detail),
    /// Not this caller's to do.
    #[response(status = 403, example = json!({"detail": "您没有执行该操作的权限。"}))]
    Forbidden(#[to_schema] super::body::Detail),
}

/// The verified claims of the request's campus token: 401 without one or with a bad one.
fn claims(parts: &Parts, app: &Campus) -> Result<Claims, ApiError> {
    let token = bearer_token(parts)
        .map_err(|_| invalid_token())?
        .ok_or_else(no_credentials)?;
    app.rt.jwt.verify(AUDIENCE, token).ok_or_else(invalid_token)
}

/// The caller's check `sql` (a condition on the caller's row, then [`READ_MODELS`], for the
/// row with id `$1` = `id`) and the read models' state, in one statement: 401 unless the row is
/// there and the condition holds.
async fn holds<'q, T>(app: &Campus, sql: &'q str, id: T) -> Result<ReadModels, ApiError>
where
    T: 'q + Send + sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    let found: Option<(bool, i64, i64, i64, i64)> = sqlx::query_as(sql)
        .bind(id)
        .fetch_optional(&app.rt.pool)
        .await?;
    match found {
        Some((true, transactions, positions, rebuilds, erasures)) => Ok(ReadModels::new((
            transactions,
            positions,
            rebuilds,
            erasures,
        ))),
        _ => Err(invalid_token()),
    }
}

pub struct CurrentSuperuser {
    pub id: String,
    pub actor: Actor,
    /// The state of the read models as this request found it (answers kept under it).
    pub at: ReadModels,
}

impl FromRequestParts<Arc<Campus>> for CurrentSuperuser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Campus>) -> Result<Self, ApiError> {
        let claims = claims(parts, app)?;
        if claims.kind != SUPERUSER {
            return Err(forbidden());
        }
        Self::of(parts, app, claims).await
    }
}

impl CurrentSuperuser {
    /// The superuser `id`, if still active: for a session whose own token (the console's
    /// cookie) named them. 401 otherwise.
    pub async fn active(parts: &Parts, app: &Campus, id: String) -> Result<Self, ApiError> {
        Self::of(
            parts,
            app,
            Claims {
                sub: id,
                kind: SUPERUSER.into(),
            },
        )
        .await
    }

    /// The superuser a verified superuser token names, if still active.
    async fn of(parts: &Parts, app: &Campus, claims: Claims) -> Result<Self, ApiError> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!("SELECT active, {READ_MODELS} FROM campus_superusers WHERE id = $1")
        });
        let at = holds(app, &SQL, &claims.sub).await?;
        Ok(Self {
            at,
            actor: http_actor(
                SUPERUSER,
                &superuser_subject(&claims.sub),
                &parts.headers,
                &parts.extensions,
            ),
            id: claims.sub,
        })
    }
}

/// Anyone logged in to the campus: a user (用户端) or a superuser (管理端), checked against the
/// read model as it is now (a deleted user's or a disabled superuser's tokens stop working).
pub struct Caller {
    pub who: Who,
    pub actor: Actor,
    /// The state of the read models as this request found it (answers kept under it).
    pub at: ReadModels,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    User(u64),
    Superuser,
}

impl Caller {
    pub fn is_superuser(&self) -> bool {
        self.who == Who::Superuser
    }

    pub fn user(&self) -> Option<u64> {
        match self.who {
            Who::User(id) => Some(id),
            Who::Superuser => None,
        }
    }

    /// 403 unless a superuser.
    pub fn superuser(&self) -> Result<(), ApiError> {
        if self.is_superuser() {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    /// 403 unless the caller is user `id` or a superuser.
    pub fn is_or_superuser(&self, id: i64) -> Result<(), ApiError> {
        match self.who {
            Who::Superuser => Ok(()),
            Who::User(me) if me as i64 == id => Ok(()),
            Who::User(_) => Err(forbidden()),
        }
    }

    /// The caller as the domain knows it.
    pub fn domain(&self) -> aggregates::campus::organizations::Caller {
        match self.who {
            Who::User(id) => aggregates::campus::organizations::Caller::User(id),
            Who::Superuser => aggregates::campus::organizations::Caller::Superuser,
        }
    }

    /// Who may see an account id (`openid`): the user themself and superusers (-1: all).
    pub fn viewer(&self) -> i64 {
        match self.who {
            Who::User(id) => id as i64,
            Who::Superuser => -1,
        }
    }
}

impl FromRequestParts<Arc<Campus>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Campus>) -> Result<Self, ApiError> {
        let claims = claims(parts, app)?;
        match claims.kind.as_str() {
            SUPERUSER => {
                let me = CurrentSuperuser::of(parts, app, claims).await?;
                Ok(Self {
                    who: Who::Superuser,
                    actor: me.actor,
                    at: me.at,
                })
            }
            USER => {
                let id: u64 = claims.sub.parse().map_err(|_| invalid_token())?;
                let id_i64 = i64::try_from(id).map_err(|_| invalid_token())?;
                let subject = user_subject(id);
                let at = if matches!(
                    parts.method,
                    axum::http::Method::GET | axum::http::Method::HEAD
                ) {
                    static SQL: LazyLock<String> = LazyLock::new(|| {
                        format!("SELECT NOT deleted, {READ_MODELS} FROM campus_users WHERE id = $1")
                    });
                    holds(app, &SQL, id_i64).await?
                } else {
                    // A write: the caller's check and their write limit in one statement (a
                    // write's answer is never one kept under the read models' state).
                    const USER_HOLDS: &str = "SELECT NOT deleted FROM campus_users WHERE id = $5";
                    if !app
                        .rt
                        .limits
                        .check_campus_write(&subject, USER_HOLDS, id_i64)
                        .await?
                    {
                        return Err(invalid_token());
                    }
                    ReadModels::default()
                };
                let mut actor = http_actor(USER, &subject, &parts.headers, &parts.extensions);
                // Their writes commit only while they exist (not after their erasure).
                actor.requires = Some(subject);
                Ok(Self {
                    who: Who::User(id),
                    actor,
                    at,
                })
            }
            _ => Err(invalid_token()),
        }
    }
}

/// Whom the time machine asks as.
pub enum As {
    User(u64),
    Superuser(String),
}

/// A token for `who` as the read models of `app` know them: None if they did not exist there
/// (they could not have asked); else a token the routes check as any other (a deleted user's,
/// a disabled superuser's, is refused as theirs were).
pub async fn token_as(app: &Campus, who: As) -> sqlx::Result<Option<String>> {
    let existed: Option<bool> = match &who {
        As::User(id) => {
            sqlx::query_scalar("SELECT true FROM campus_users WHERE id = $1")
                .bind(*id as i64)
                .fetch_optional(&app.rt.pool)
                .await?
        }
        As::Superuser(id) => {
            sqlx::query_scalar("SELECT true FROM campus_superusers WHERE id = $1")
                .bind(id)
                .fetch_optional(&app.rt.pool)
                .await?
        }
    };
    Ok(existed.map(|_| issue(app, who)))
}

fn issue(app: &Campus, who: As) -> String {
    let (sub, kind) = match who {
        As::User(id) => (id.to_string(), USER),
        As::Superuser(id) => (id, SUPERUSER),
    };
    app.rt.jwt.issue(
        AUDIENCE,
        Claims {
            sub,
            kind: kind.into(),
        },
    )
}

/// A superuser's token as the read models of `app` know them: `preferred`'s if they were
/// active there, else the first registered active one's; None if there was none.
pub async fn superuser_token_then(
    app: &Campus,
    preferred: Option<&str>,
) -> sqlx::Result<Option<String>> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT id FROM campus_superusers WHERE active \
         ORDER BY (id = $1) DESC, registered_at, id LIMIT 1",
    )
    .bind(preferred.unwrap_or_default())
    .fetch_optional(&app.rt.pool)
    .await?;
    Ok(id.map(|id| issue(app, As::Superuser(id))))
}

//! Who is calling a campus endpoint: a superuser verified by token and by the read model as it
//! is now (a disabled superuser's tokens stop working at once). Answers in DRF's shapes.

use std::sync::Arc;

use aggregates::campus::superusers::superuser_subject;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AUDIENCE;
use crate::bus::Actor;
use crate::http::ApiError;
use crate::orchestra::{bearer_token, http_actor};
use crate::App;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The superuser's id.
    pub sub: String,
    /// `superuser` (campus users will have tokens of their own kind).
    pub kind: String,
}

pub const SUPERUSER: &str = "superuser";

pub fn no_credentials() -> ApiError {
    ApiError::detail(StatusCode::UNAUTHORIZED, "身份认证信息未提供。")
}

pub fn invalid_token() -> ApiError {
    ApiError::detail(StatusCode::UNAUTHORIZED, "认证令牌无效。")
}

pub fn forbidden() -> ApiError {
    ApiError::detail(StatusCode::FORBIDDEN, "您没有执行该操作的权限。")
}

pub struct CurrentSuperuser {
    pub id: String,
    pub actor: Actor,
}

impl FromRequestParts<Arc<App>> for CurrentSuperuser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer_token(parts)
            .map_err(|_| invalid_token())?
            .ok_or_else(no_credentials)?;
        let claims: Claims = app.jwt.verify(AUDIENCE, token).ok_or_else(invalid_token)?;
        if claims.kind != SUPERUSER {
            return Err(forbidden());
        }
        let active: Option<bool> =
            sqlx::query_scalar("SELECT active FROM campus_superusers WHERE id = $1")
                .bind(&claims.sub)
                .fetch_optional(&app.pool)
                .await?;
        if active != Some(true) {
            return Err(invalid_token());
        }
        Ok(Self {
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

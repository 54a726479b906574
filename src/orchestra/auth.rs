//! Who is calling: a member verified by token and by the roster as it is now (an unbound or
//! rebound name's old tokens stop working at once).

use std::sync::Arc;

use aggregates::orchestra::roster::member_subject;
use aggregates::orchestra::{Role, Section};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::context::Orchestra;
use super::context::AUDIENCE;
use crate::http::schema::Message;
use crate::http::{bearer_token, http_actor, ApiError};
use projections::orchestra::roster as read;
use runtime::bus::Actor;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The member id (never the name: a token is no place for personal data).
    pub sub: String,
    /// The number of the WeChat binding the token was issued under: unbinding (or erasure)
    /// ends it, and a later binding has another number.
    pub bnd: u64,
}

pub struct CurrentMember {
    /// The roster id: an opaque key for this member (their stream's id).
    pub id: i64,
    /// Their name as the roster read model holds it (for answers only).
    pub name: String,
    pub section: Section,
    pub role: Role,
    /// The current season, as this request found it.
    pub season: u64,
    /// The member's key as this request found it (None: erased meanwhile).
    pub key: Option<runtime::personal::Key>,
    /// The state of the read models as this request found it (answers kept under it).
    pub at: runtime::answers::ReadModels,
    pub actor: Actor,
}

pub struct CurrentManager(pub CurrentMember);

/// What a member's route answers without a member's valid token.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built: the errors are ApiError's
pub enum MemberAuth {
    /// No token, a bad or an expired one, or one whose binding no longer holds.
    #[response(status = 401, example = json!({"msg": "Authentication credentials were not provided."}))]
    Unauthorized(#[to_schema] Message),
}

/// What a manager's route answers to anyone else.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built: the errors are ApiError's
pub enum ManagerAuth {
    /// No token, a bad or an expired one, or not a manager's.
    #[response(status = 401, example = json!({"msg": "You are not a manager!"}))]
    Unauthorized(#[to_schema] Message),
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::msg(StatusCode::UNAUTHORIZED, msg)
}

/// The token of `Authorization: JWT <token>` or `Bearer <token>`.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    bearer_token(parts).map_err(|_| unauthorized("Invalid or expired token."))
}

impl FromRequestParts<Arc<Orchestra>> for CurrentMember {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Orchestra>) -> Result<Self, ApiError> {
        let token = bearer(parts)?
            .ok_or_else(|| unauthorized("Authentication credentials were not provided."))?;
        let claims: Claims = app
            .rt
            .jwt
            .verify(AUDIENCE, token)
            .ok_or_else(|| unauthorized("Invalid or expired token."))?;
        let id: i64 = claims
            .sub
            .parse()
            .map_err(|_| unauthorized("Invalid or expired token."))?;
        let read::MemberNow {
            member,
            season,
            key,
            at,
        } = read::member_now(&app.rt.pool, id)
            .await?
            .filter(|now| now.member.binding == Some(claims.bnd as i64))
            .ok_or_else(|| unauthorized("Invalid or expired token."))?;
        let role = member.role();
        Ok(Self {
            actor: http_actor(
                role.as_str(),
                &member_subject(member.id as u64),
                &parts.headers,
                &parts.extensions,
            ),
            id: member.id,
            name: member.name.clone(),
            section: member.section(),
            role,
            season,
            at,
            key: key.and_then(|k| runtime::personal::Key::try_from(k.as_slice()).ok()),
        })
    }
}

impl FromRequestParts<Arc<Orchestra>> for CurrentManager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Orchestra>) -> Result<Self, ApiError> {
        let member = CurrentMember::from_request_parts(parts, app).await?;
        if member.role != Role::Manager {
            return Err(unauthorized("You are not a manager!"));
        }
        Ok(Self(member))
    }
}

/// A token for member `id` as the read models of `app` know them, issued under the binding
/// they had there (the time machine asks as that member); None if they had none (they could
/// not have called). Without `id`: a bound manager's, if there was one.
pub async fn token_as(app: &Orchestra, id: Option<i64>) -> sqlx::Result<Option<String>> {
    let bound = match id {
        Some(id) => read::member_now(&app.rt.pool, id)
            .await?
            .and_then(|now| now.member.binding.map(|binding| (id, binding))),
        None => read::a_bound_manager(&app.rt.pool).await?,
    };
    Ok(bound.map(|(id, binding)| {
        app.rt.jwt.issue(
            AUDIENCE,
            Claims {
                sub: id.to_string(),
                bnd: binding as u64,
            },
        )
    }))
}

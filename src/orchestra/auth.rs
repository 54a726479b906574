//! Who is calling: a member verified by token and by the roster as it is now (an unbound or
//! rebound name's old tokens stop working at once).

use std::sync::Arc;

use aggregates::orchestra::roster::member_subject;
use aggregates::orchestra::{Role, Section};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::{read, AUDIENCE};
use crate::bus::Actor;
use crate::http::{client_request_id, request_id, ApiError};
use crate::App;

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
    pub key: Option<projections::personal::Key>,
    pub actor: Actor,
}

pub struct CurrentManager(pub CurrentMember);

fn unauthorized(msg: &str) -> ApiError {
    ApiError::msg(StatusCode::UNAUTHORIZED, msg)
}

/// An `Authorization` header that is not `JWT <token>` or `Bearer <token>`.
#[derive(Debug)]
pub struct MalformedAuthorization;

/// The token of `Authorization: JWT <token>` or `Bearer <token>`, if the header is there.
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, MalformedAuthorization> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| MalformedAuthorization)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(MalformedAuthorization)?;
    if !(scheme.eq_ignore_ascii_case("jwt") || scheme.eq_ignore_ascii_case("bearer")) {
        return Err(MalformedAuthorization);
    }
    Ok(Some(token.trim()))
}

/// The token of `Authorization: JWT <token>` or `Bearer <token>`.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    bearer_token(parts).map_err(|_| unauthorized("Invalid or expired token."))
}

/// The actor of an HTTP request by `subject` (opaque) in `role`.
pub fn http_actor(
    kind: &'static str,
    subject: &str,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Actor {
    Actor {
        kind,
        name: subject.to_string(),
        request_id: request_id(headers),
        client_request_id: client_request_id(headers),
        channel: "http",
        append_by: extensions
            .get::<crate::http::AppendBy>()
            .map(|deadline| deadline.0),
    }
}

impl FromRequestParts<Arc<App>> for CurrentMember {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer(parts)?
            .ok_or_else(|| unauthorized("Authentication credentials were not provided."))?;
        let claims: Claims = app
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
        } = read::member_now(&app.pool, id)
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
            key: key.and_then(|k| projections::personal::Key::try_from(k.as_slice()).ok()),
        })
    }
}

impl FromRequestParts<Arc<App>> for CurrentManager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let member = CurrentMember::from_request_parts(parts, app).await?;
        if member.role != Role::Manager {
            return Err(unauthorized("You are not a manager!"));
        }
        Ok(Self(member))
    }
}

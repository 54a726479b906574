//! Who is calling: a member verified by token and by the roster as it is now (an unbound or
//! rebound name's old tokens stop working at once).

use std::sync::Arc;

use aggregates::orchestra::roster::member_subject;
use aggregates::orchestra::{Role, Section};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::context::AUDIENCE;
use super::context::{Known, Orchestra};
use crate::http::schema::Message;
use crate::http::{bearer_token, http_actor, ApiError};
use projections::orchestra::roster as read;
use runtime::bus::{Actor, Holds};

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
    /// The number of the binding the token was issued under (the roster held it).
    pub binding: i64,
    /// Taken from what this process remembered of the member (a write), not read now: trusted
    /// only as far as an append or a fresh look-up confirms it ([`CurrentMember::answered`]).
    pub from_memory: bool,
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

pub fn unauthorized(msg: &str) -> ApiError {
    ApiError::msg(StatusCode::UNAUTHORIZED, msg)
}

/// The token of `Authorization: JWT <token>` or `Bearer <token>`.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    bearer_token(parts).map_err(|_| unauthorized("Invalid or expired token."))
}

/// The member `id` as the roster holds them now, with the token's `binding`; remembered for
/// their next write.
pub async fn look_up(
    app: &Orchestra,
    id: i64,
    binding: i64,
) -> Result<(Known, runtime::answers::ReadModels), ApiError> {
    let found = read::member_now(&app.rt.pool, id)
        .await?
        .and_then(Known::of)
        .filter(|(known, _)| known.binding == binding);
    let Some((known, at)) = found else {
        // The token no longer speaks for them: their next write is looked up again (and
        // refused before it counts against their limit).
        app.callers.forget(&id);
        return Err(unauthorized("Invalid or expired token."));
    };
    app.callers.remember(id, known.clone());
    Ok((known, at))
}

/// A write's own check of its caller, with the write limit ([`runtime::limits::Limits`]):
/// their token (member `$5`, binding `$6`) still speaks for them.
const STILL_BOUND: &str =
    "SELECT EXISTS (SELECT FROM orchestra_members WHERE id = $5 AND active AND binding = $6)";

/// Charge `me`'s write limit, and 401 (nothing counted) when their token no longer speaks for
/// them: a revoked token never spends the member's writes, whatever a process remembers.
pub async fn charge_write(app: &Orchestra, me: &CurrentMember) -> Result<(), ApiError> {
    if app
        .rt
        .limits
        .check_write(me.id, STILL_BOUND, me.binding)
        .await?
    {
        return Ok(());
    }
    app.callers.forget(&me.id);
    Err(unauthorized("Invalid or expired token."))
}

/// Who a write's answer is for, taken before it runs: see [`CurrentMember::answered`].
pub struct Ticket {
    id: i64,
    binding: i64,
    /// Taken from memory and not (yet) confirmed by an append.
    holds: Option<Holds>,
}

impl CurrentMember {
    /// What [`CurrentMember::answered`] needs once the request has run.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            id: self.id,
            binding: self.binding,
            holds: self.from_memory.then(|| self.actor.holds.clone()).flatten(),
        }
    }

    /// A write's `answer`, once the caller is known to hold: a caller taken from memory whose
    /// request nothing confirmed (a bad body or id, a limit) is looked up again first, so a token revoked by any process gets 401 whatever else was wrong, as it does
    /// from a process that does not remember them.
    pub async fn answered<T>(
        app: &Orchestra,
        ticket: Ticket,
        answer: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let unconfirmed = ticket.holds.is_some_and(|holds| !holds.confirmed());
        if unconfirmed && answer.is_err() {
            look_up(app, ticket.id, ticket.binding).await?;
        }
        answer
    }

    pub fn new(
        id: i64,
        known: Known,
        at: runtime::answers::ReadModels,
        from_memory: bool,
        actor: Actor,
    ) -> Self {
        let actor = Actor {
            kind: known.role.as_str(),
            holds: Some(known.holds(id)),
            ..actor
        };
        Self {
            id,
            binding: known.binding,
            from_memory,
            name: known.name,
            section: known.section,
            role: known.role,
            season: known.season,
            key: known.key,
            at,
            actor,
        }
    }

    pub fn known(&self) -> Known {
        Known {
            binding: self.binding,
            name: self.name.clone(),
            section: self.section,
            role: self.role,
            season: self.season,
            key: self.key,
        }
    }
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
        let binding =
            i64::try_from(claims.bnd).map_err(|_| unauthorized("Invalid or expired token."))?;
        let actor = http_actor(
            "member",
            &member_subject(id as u64),
            &parts.headers,
            &parts.extensions,
        );
        // A write may start from what this process remembers of the caller: its append checks
        // it. A read looks the caller up (its answer depends on the read models' state, which
        // the same statement reads).
        let writes = !matches!(parts.method, Method::GET | Method::HEAD);
        if writes {
            if let Some(known) = app.callers.get(&id).filter(|k| k.binding == binding) {
                return Ok(Self::new(id, known, Default::default(), true, actor));
            }
        }
        let (known, at) = look_up(app, id, binding).await?;
        Ok(Self::new(id, known, at, false, actor))
    }
}

impl FromRequestParts<Arc<Orchestra>> for CurrentManager {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<Orchestra>) -> Result<Self, ApiError> {
        let mut member = CurrentMember::from_request_parts(parts, app).await?;
        if member.role != Role::Manager && member.from_memory {
            // Remembered as a member: they may have been made a manager since.
            let (known, at) = look_up(app, member.id, member.binding).await?;
            member = CurrentMember::new(member.id, known, at, false, member.actor);
        }
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

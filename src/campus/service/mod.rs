//! The campus's use cases, one function each, shared by the HTTP handlers (`super::http`) and
//! the CLI: each checks its fields (every wrong one at once, in DRF's words), authorises,
//! seals personal values, draws ids, runs the command and returns what was committed. The
//! rules themselves live in the aggregates (`aggregates::campus`); what the read models say,
//! in `projections::campus`. Refusals are the campus's documented answers (`ApiError` in its
//! DRF shapes).

pub mod catalog;
pub mod feedback;
pub mod organizations;
pub mod superusers;
pub mod users;

use aggregates::campus::users::user_subject;
use projections::campus::read;
use runtime::bus::CommandError;
use runtime::personal::{Key, KeyError};

use super::auth::{invalid_token, Caller};
use super::context::Campus;
use super::fields::{invalid_pk, Fields};
use crate::http::{ApiError, Field};

/// The next number of a kind of record (`campus_<kind>_id_seq`).
pub async fn next_id(app: &Campus, sequence: &'static str) -> Result<u64, ApiError> {
    let id: i64 = sqlx::query_scalar(&format!("SELECT nextval('{sequence}')"))
        .fetch_one(&app.rt.pool)
        .await?;
    Ok(id as u64)
}

/// A command that could not run for a reason that is not the caller's input.
pub fn command_failed<E: std::error::Error>(e: CommandError<E>) -> ApiError {
    match e {
        CommandError::Busy => ApiError::record_busy(),
        CommandError::Unavailable => ApiError::command_unavailable(),
        CommandError::Rejected(e) => ApiError::internal(format!("unexpected refusal: {e}")),
        CommandError::Duplicate => ApiError::internal("unexpected uniqueness conflict"),
        // The caller was erased (their token outlived them for a moment), or no longer holds
        // what their check found.
        CommandError::Gone | CommandError::CallerChanged => invalid_token(),
        CommandError::Internal(e) => ApiError::internal(e),
    }
}

/// User `id`'s key, or 401 once they are erased (the caller's token outlived them).
pub async fn key_of(app: &Campus, id: u64) -> Result<Key, ApiError> {
    app.rt
        .keys
        .key(&user_subject(id))
        .await
        .map_err(|e| match e {
            KeyError::Forgotten => invalid_token(),
            e => e.into(),
        })
}

/// The `{org, person}` of a follow or an appointment: both ids parsed, then (once both parse)
/// `authorise` sees the person, then the organisation and the user are looked up and, when
/// both exist, a new id drawn from `sequence`, in one statement; DRF's invalid-pk error for
/// either that does not exist. Returns the organisation, its stream (the application's id),
/// the person and the new id.
pub async fn org_and_person(
    app: &Campus,
    org: &Field,
    person: &Field,
    sequence: &'static str,
    authorise: impl FnOnce(i64) -> Result<(), ApiError>,
) -> Result<(i64, i64, i64, u64), ApiError> {
    let mut fields = Fields::default();
    let org = fields.id(org, "org");
    let person = fields.id(person, "person");
    if let (Some(_), Some((person, _))) = (&org, &person) {
        authorise(*person)?;
    }
    let (stream, found, id) = read::org_person_and_id(
        &app.rt.pool,
        org.as_ref().map(|(org, _)| *org),
        person.as_ref().map(|(person, _)| *person),
        sequence,
    )
    .await?;
    if let (Some((_, raw)), None) = (&org, stream) {
        fields.add("org", invalid_pk(raw));
    }
    if let (Some((_, raw)), false) = (&person, found) {
        fields.add("person", invalid_pk(raw));
    }
    fields.check()?;
    match (org, stream, person, id) {
        (Some((org, _)), Some(stream), Some((person, _)), Some(id)) => {
            Ok((org, stream, person, id as u64))
        }
        _ => Err(ApiError::internal("checked fields missing")),
    }
}

/// A change refused because a person it names was erased meanwhile: `field` names them,
/// unless it was the caller who was erased (then their token is dead: 401).
pub async fn named_gone(app: &Campus, me: &Caller, user: i64, field: &str) -> ApiError {
    if let Some(caller) = me.user() {
        if matches!(
            app.rt.keys.key(&user_subject(caller)).await,
            Err(KeyError::Forgotten)
        ) {
            return invalid_token();
        }
    }
    match field {
        "detail" => ApiError::Body(
            axum::http::StatusCode::BAD_REQUEST,
            serde_json::json!({"detail": ["申请人已注销。"]}),
        ),
        field => super::fields::field_error(field, &invalid_pk(&user.to_string())),
    }
}

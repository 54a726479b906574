//! The orchestra document's endpoints.

use std::sync::Arc;

use aggregates::orchestra::absences::{
    AbsenceChange, AbsenceCommand, AbsenceError, AbsenceEvent, AbsenceRequest, MemberAbsences,
};
use aggregates::orchestra::roster::{
    former_member, member_subject, RosterCommand, RosterError, RosterEvent, NAME_SCOPE,
    OPENID_SCOPE, ROSTER_ID,
};
use aggregates::orchestra::{AbsenceType, MemberName};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use runtime::personal::{self as crypto, Key, ERASED_TEXT};
use serde::Serialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Claims, CurrentManager, CurrentMember};
use super::read::{self, AbsenceRow};
use super::schema::{
    AbsenceBody, AbsenceChangeBody, LoginAnswer, LoginBody, NextAnswer, PresenceAnswer, ProcessBody,
};
use super::Orchestra;
use super::AUDIENCE;
use crate::http::http_actor;
use crate::http::schema::{Message, NotFound};
use crate::http::{parse_date, parse_id, ApiError, Input, Segment};
use runtime::bus::{CommandError, Committed};
use runtime::personal::KeyError;

type AppState = State<Arc<Orchestra>>;

/// The orchestra document's routes, each with its description in the OpenAPI document.
pub fn routes() -> OpenApiRouter<Arc<Orchestra>> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(my_absences, apply))
        .routes(routes!(change, cancel))
        .routes(routes!(all_absences))
        .routes(routes!(next))
        .routes(routes!(future))
        .routes(routes!(history))
        .routes(routes!(process))
        .routes(routes!(present))
}

const MAX_REASON_CHARS: usize = 1000;

fn absence_error(e: CommandError<AbsenceError>) -> ApiError {
    match e {
        CommandError::Rejected(e @ AbsenceError::QuotaExhausted) => {
            ApiError::msg(StatusCode::FORBIDDEN, e.to_string())
        }
        CommandError::Rejected(AbsenceError::NotFound) => ApiError::not_found(),
        // The only service that fails is the database (drawing an absence id): a lost session,
        // a timeout, a full pool. Nothing was written; a retry may work.
        CommandError::Rejected(AbsenceError::Service(e)) => {
            tracing::warn!(error = %e, "a command's database service failed");
            ApiError::busy("The server is busy; please try again.")
        }
        CommandError::Rejected(e) => ApiError::bad_request(e.to_string()),
        CommandError::Duplicate => {
            ApiError::bad_request("This absence conflicts with an existing record.")
        }
        CommandError::Busy => ApiError::record_busy(),
        CommandError::Unavailable => ApiError::command_unavailable(),
        // The member was erased meanwhile.
        CommandError::Gone => ApiError::not_found(),
        CommandError::Internal(e) => ApiError::internal(e),
    }
}

// ---- login ------------------------------------------------------------------------------

fn not_listed() -> ApiError {
    ApiError::msg(
        StatusCode::UNAUTHORIZED,
        RosterError::NotInRoster.to_string(),
    )
}

fn mismatch() -> ApiError {
    ApiError::msg(
        StatusCode::FORBIDDEN,
        RosterError::WechatMismatch.to_string(),
    )
}

fn awaiting_approval() -> ApiError {
    ApiError::msg(
        StatusCode::FORBIDDEN,
        RosterError::AwaitingApproval { same_account: true }.to_string(),
    )
}

#[utoipa::path(post, path = "/account/login", tag = "orchestra",
    summary = "Log in with a roster name and a wx.login() code",
    description = "WeChat is asked about the code first: without a valid code the answer says nothing about the roster. The first login binds the name to the WeChat account (the notification addresses are mailed about every binding); later logins must come from the same account. With ENSEMBLE_MANAGER_BINDING=approve a manager's first login waits for an operator's `ensemble roster approve NAME` (403 until then). Rate-limited (429 with Retry-After): attempts per client address, failures per name from one address, and failures per name from anywhere (past that ceiling an address that has not failed is still heard).",
    request_body(content(
        (LoginBody = "application/json"),
        (LoginBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Logged in", body = LoginAnswer),
        (status = 400, description = "A field is missing or malformed", body = Message, example = json!({"msg": "code is required."})),
        (status = 401, description = "The name is not on the roster", body = Message, example = json!({"msg": "You are not in the member list!"})),
        (status = 403, description = "The name is bound to another WeChat account, or the account to another name; or a manager's first login waits for approval", body = Message, example = json!({"msg": "Name and wechat id doesn't match!"})),
        (status = 413, description = "Body over 64 KiB", body = Message),
        (status = 429, description = "Too many attempts; see Retry-After", body = Message),
        (status = 502, description = "WeChat refused the code or did not answer", body = Message, example = json!({"msg": "wx server request failed"})),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
/// The name is found by its keyed hash among the reserved names, the openid by its keyed hash
/// among the bound ones: neither is ever looked up, stored or logged in clear.
async fn login(
    State(app): AppState,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    input: Input,
) -> Result<Response, ApiError> {
    let name = input.required_text("name")?;
    let code = input.required_text("code")?;
    let attempt = app
        .rt
        .limits
        .login_attempt(
            &app.rt.keys,
            crate::http::client_address(&extensions),
            "login-name",
            Some(&name),
        )
        .await?;
    // WeChat first: a stranger without a valid code learns nothing about the roster.
    // (`app_id` / `app_secret` of old clients are ignored: the configured credentials win.)
    let openid = match app.rt.wechat.code2session(&app.credentials, &code).await {
        Ok(openid) => openid,
        Err(e) => {
            // A code WeChat refused counts against the name; WeChat out of reach does not.
            match e {
                runtime::wechat::WechatError::Refused { .. } => {
                    app.rt.limits.login_failed(&attempt).await
                }
                runtime::wechat::WechatError::Unreachable(_) => {
                    tracing::warn!(error = %e, "code2session failed");
                    app.rt.limits.login_cleared(&attempt).await
                }
            }
            return Err(ApiError::msg(
                StatusCode::BAD_GATEWAY,
                "wx server request failed",
            ));
        }
    };
    match bind(&app, &headers, &extensions, &name, &openid).await {
        Ok((member_id, binding)) => {
            app.rt.limits.login_cleared(&attempt).await;
            let token = app.rt.jwt.issue(
                AUDIENCE,
                Claims {
                    sub: member_id.to_string(),
                    bnd: binding,
                },
            );
            Ok(Json(json!({ "msg": "login!", "token": token })).into_response())
        }
        Err(Refusal::Failed(e)) => {
            app.rt.limits.login_failed(&attempt).await;
            Err(e)
        }
        Err(Refusal::Other(e)) => {
            app.rt.limits.login_cleared(&attempt).await;
            Err(e)
        }
    }
}

/// Why a login with a valid WeChat code got no token: a failure of the credentials (counted
/// against the name), or anything else.
enum Refusal {
    Failed(ApiError),
    Other(ApiError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Self::Other(e)
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Self::Other(e.into())
    }
}

/// The member `name` logging in with `openid`: their binding number, binding them first if
/// they are not bound yet.
async fn bind(
    app: &Orchestra,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    name: &str,
    openid: &str,
) -> Result<(i64, u64), Refusal> {
    let failed = |e: ApiError| Refusal::Failed(e);
    let name = MemberName::parse(name).map_err(|_| failed(not_listed()))?;
    let member = read::member_by_name(&app.rt.pool, app.rt.keys.blind(NAME_SCOPE, name.as_str()))
        .await?
        .ok_or_else(|| failed(not_listed()))?;
    let subject = member_subject(member.id as u64);
    let openid_blind = app.rt.keys.blind(OPENID_SCOPE, openid);
    let owner = app.rt.keys.owner(OPENID_SCOPE, openid_blind).await?;
    match member.binding {
        Some(binding) if owner.as_deref() == Some(subject.as_str()) => {
            return Ok((member.id, binding as u64))
        }
        // The account speaks for another member, or the member is bound to another account.
        _ if owner.is_some_and(|owner| owner != subject) => return Err(failed(mismatch())),
        Some(_) => return Err(failed(mismatch())),
        // Not bound (or bound so recently that the read model has not caught up): bind.
        None => {}
    }
    let actor = http_actor(member.role().as_str(), &subject, headers, extensions);
    let key = app.rt.keys.key(&subject).await.map_err(|e| match e {
        KeyError::Forgotten => failed(not_listed()),
        e => Refusal::Other(e.into()),
    })?;
    let command = RosterCommand::BindWechat {
        member_id: member.id as u64,
        openid: app
            .rt
            .keys
            .seal_unique_with(&subject, &key, OPENID_SCOPE, openid),
        managers_wait: app.rt.config.manager_binding == runtime::config::ManagerBinding::Approve,
    };
    let binding = match app.roster.execute(ROSTER_ID, command, &actor).await {
        Ok(committed) => committed
            .events
            .iter()
            .find_map(|e| match e {
                RosterEvent::WechatBound { binding, .. } => Some(*binding),
                _ => None,
            })
            // Asked, not bound: the manager waits for an operator's approval.
            .ok_or_else(awaiting_approval)?,
        // Bound meanwhile (a racing login): by this account, or another?
        Err(CommandError::Rejected(RosterError::AlreadyBound { binding, .. })) => {
            match app.rt.keys.owner(OPENID_SCOPE, openid_blind).await? {
                Some(owner) if owner == subject => binding,
                _ => return Err(failed(mismatch())),
            }
        }
        // The manager's request waits; another account's login waits just the same (it
        // learns nothing), but counts as a failure.
        Err(CommandError::Rejected(RosterError::AwaitingApproval { same_account })) => {
            return Err(if same_account {
                Refusal::Other(awaiting_approval())
            } else {
                failed(awaiting_approval())
            })
        }
        Err(CommandError::Rejected(RosterError::NotInRoster)) => return Err(failed(not_listed())),
        Err(CommandError::Rejected(e)) => {
            return Err(failed(ApiError::msg(StatusCode::FORBIDDEN, e.to_string())))
        }
        // The openid is reserved by another member (who bound it meanwhile).
        Err(CommandError::Duplicate) => return Err(failed(mismatch())),
        Err(CommandError::Busy) => return Err(ApiError::record_busy().into()),
        Err(CommandError::Unavailable) => return Err(ApiError::command_unavailable().into()),
        Err(CommandError::Gone) => return Err(failed(not_listed())),
        Err(CommandError::Internal(e)) => return Err(ApiError::internal(e).into()),
    };
    Ok((member.id, binding))
}

// ---- a member's own absences --------------------------------------------------------------

fn reason(input: &Input) -> Result<Option<String>, ApiError> {
    let Some(reason) = input.text("reason")? else {
        return Ok(None);
    };
    if reason.trim().is_empty() {
        return Err(ApiError::bad_request("reason is required."));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_request(format!(
            "reason is longer than {MAX_REASON_CHARS} characters."
        )));
    }
    Ok(Some(reason.trim().to_string()))
}

fn date(input: &Input) -> Result<Option<chrono::NaiveDate>, ApiError> {
    input
        .text("time_absence")?
        .map(|s| {
            parse_date(&s).ok_or_else(|| {
                ApiError::bad_request("time_absence must be a date like 2026-03-12.")
            })
        })
        .transpose()
}

fn kind(input: &Input) -> Result<Option<AbsenceType>, ApiError> {
    input
        .text("type")?
        .map(|s| AbsenceType::parse(&s).map_err(|e| ApiError::bad_request(e.to_string())))
        .transpose()
}

/// The absence as the command left it, from the aggregate's state after the commit: what was
/// committed, whether or not the read models have caught up yet (they have, unless the
/// projector was held up past its bound; then a GET may lag for a moment). Its texts are
/// opened with `key`, the applier's.
fn answer(
    committed: &Committed<MemberAbsences>,
    id: u64,
    key: &Key,
    applier: String,
    processor: Option<String>,
) -> Result<AbsenceRow, ApiError> {
    let absence = committed
        .state
        .absence(id)
        .ok_or_else(|| ApiError::internal(format!("absence {id} is not in what was committed")))?;
    let open = |sealed| crypto::open(key, sealed).unwrap_or_else(|| ERASED_TEXT.to_string());
    let reason = open(&absence.reason);
    let result = absence.decision.as_ref().map(|d| open(&d.result));
    let processor = absence.decision.as_ref().and(processor);
    Ok(read::absence_row(
        id, absence, applier, processor, reason, result,
    ))
}

/// The key of the calling member, as the token check read it: an erased member's token may
/// outlive the erasure until the read models catch up, but nothing of theirs is sealed after it.
fn my_key(me: &CurrentMember) -> Result<Key, ApiError> {
    me.key
        .ok_or_else(|| ApiError::msg(StatusCode::UNAUTHORIZED, "Invalid or expired token."))
}

#[utoipa::path(get, path = "/absence", tag = "orchestra",
    summary = "The caller's absences, by date",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "The caller's absences", body = Vec<AbsenceRow>),
        (status = 401, description = "No, a bad or an expired token", body = Message, example = json!({"msg": "Authentication credentials were not provided."})),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn my_absences(
    State(app): AppState,
    me: CurrentMember,
) -> Result<Json<Vec<AbsenceRow>>, ApiError> {
    Ok(Json(
        read::absences_of(&app.rt.pool, me.id, &me.name).await?,
    ))
}

#[utoipa::path(post, path = "/absence", tag = "orchestra",
    summary = "Ask to miss a rehearsal",
    description = "Within the section's quota for the season, one absence per date, for a date after today.",
    security(("jwt" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Resending a write with the same key (and body) within 24 h returns the first answer without doing it again; the same key with another body is a 422."),),
    request_body(content(
        (AbsenceBody = "application/json"),
        (AbsenceBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Recorded", body = AbsenceRow),
        (status = 400, description = "A field is missing or bad, the date is not after today or taken", body = Message, example = json!({"msg": "You have already applied for an absence on this date!"})),
        (status = 401, description = "No, a bad or an expired token", body = Message),
        (status = 403, description = "The quota is used up", body = Message),
        (status = 413, description = "Body over 64 KiB", body = Message),
        (status = 409, description = "A request with this Idempotency-Key is still running", body = Message),
        (status = 422, description = "The Idempotency-Key was used for another request", body = Message),
        (status = 429, description = "Too many writes; see Retry-After", body = Message),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn apply(
    State(app): AppState,
    me: CurrentMember,
    input: Input,
) -> Result<Response, ApiError> {
    app.rt.limits.check_write(me.id).await?;
    let date = date(&input)?.ok_or_else(|| ApiError::bad_request("time_absence is required."))?;
    let kind = kind(&input)?.ok_or_else(|| ApiError::bad_request("type is required."))?;
    let reason = reason(&input)?.ok_or_else(|| ApiError::bad_request("reason is required."))?;
    let key = my_key(&me)?;
    let subject = member_subject(me.id as u64);
    let request = AbsenceRequest {
        date,
        kind,
        reason: crypto::seal(&subject, &key, &reason),
    };
    let command = AbsenceCommand::Apply {
        applier: me.id as u64,
        section: me.section,
        season: me.season,
        request,
    };
    let committed = app
        .absences
        .execute(&me.id.to_string(), command, &me.actor)
        .await
        .map_err(absence_error)?;
    let Some(AbsenceEvent::AbsenceApplied { absence_id, .. }) = committed.events.first() else {
        return Err(ApiError::internal("apply committed no AbsenceApplied"));
    };
    app.appliers.remember(*absence_id, &me.id.to_string());
    let row = answer(&committed, *absence_id, &key, me.name.clone(), None)?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

#[utoipa::path(put, path = "/absence/{id}", tag = "orchestra",
    summary = "Change one of the caller's future absences",
    security(("jwt" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The absence's id"), ("Idempotency-Key" = Option<String>, Header, description = "Resending a write with the same key (and body) within 24 h returns the first answer without doing it again; the same key with another body is a 422."),),
    request_body(content(
        (AbsenceChangeBody = "application/json"),
        (AbsenceChangeBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Changed (any earlier decision no longer holds)", body = AbsenceRow),
        (status = 400, description = "A field is bad, the absence is past, or the new date taken", body = Message),
        (status = 401, description = "No, a bad or an expired token", body = Message),
        (status = 403, description = "The quota is used up", body = Message),
        (status = 404, description = "No such absence of the caller", body = NotFound),
        (status = 413, description = "Body over 64 KiB", body = Message),
        (status = 409, description = "A request with this Idempotency-Key is still running", body = Message),
        (status = 422, description = "The Idempotency-Key was used for another request", body = Message),
        (status = 429, description = "Too many writes; see Retry-After", body = Message),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn change(
    State(app): AppState,
    me: CurrentMember,
    Segment(id): Segment,
    input: Input,
) -> Result<Response, ApiError> {
    app.rt.limits.check_write(me.id).await?;
    let id = parse_id(&id)? as u64;
    // Fields left out keep the values the member's stream holds when the command runs (a
    // read model read earlier may lag: filling them from it could undo an earlier change).
    // The command goes to the caller's own stream: another member's absence is not there (404).
    let (date, kind, reason) = (date(&input)?, kind(&input)?, reason(&input)?);
    let key = my_key(&me)?;
    let subject = member_subject(me.id as u64);
    let command = AbsenceCommand::Change {
        absence_id: id,
        section: me.section,
        change: AbsenceChange {
            date,
            kind,
            reason: reason.map(|reason| crypto::seal(&subject, &key, &reason)),
        },
    };
    let committed = app
        .absences
        .execute(&me.id.to_string(), command, &me.actor)
        .await
        .map_err(absence_error)?;
    // The decision's processor, if the change kept it (a change that changes nothing).
    let processor = match committed
        .state
        .absence(id)
        .and_then(|a| a.decision.as_ref())
    {
        Some(decision) => read::member_name(&app.rt.pool, decision.processor as i64).await?,
        None => None,
    };
    // The processor is another member.
    Ok(crate::http::naming_others(Json(answer(
        &committed,
        id,
        &key,
        me.name.clone(),
        processor,
    )?)))
}

#[utoipa::path(delete, path = "/absence/{id}", tag = "orchestra",
    summary = "Cancel one of the caller's future absences",
    security(("jwt" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The absence's id"), ("Idempotency-Key" = Option<String>, Header, description = "Resending a write with the same key (and body) within 24 h returns the first answer without doing it again; the same key with another body is a 422."),),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 400, description = "The absence is past", body = Message),
        (status = 401, description = "No, a bad or an expired token", body = Message),
        (status = 404, description = "No such absence of the caller", body = NotFound),
        (status = 409, description = "A request with this Idempotency-Key is still running", body = Message),
        (status = 422, description = "The Idempotency-Key was used for another request", body = Message),
        (status = 429, description = "Too many writes; see Retry-After", body = Message),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn cancel(
    State(app): AppState,
    me: CurrentMember,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    app.rt.limits.check_write(me.id).await?;
    // An erased member writes nothing more, not even a cancellation.
    my_key(&me)?;
    // To the caller's own stream: another member's absence is not there (404).
    let command = AbsenceCommand::Cancel {
        absence_id: parse_id(&id)? as u64,
    };
    app.absences
        .execute(&me.id.to_string(), command, &me.actor)
        .await
        .map_err(absence_error)?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- managers -----------------------------------------------------------------------------

#[utoipa::path(get, path = "/manager", tag = "orchestra",
    summary = "Every absence, by date (managers)",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "Every absence", body = Vec<AbsenceRow>),
        (status = 401, description = "No, a bad or an expired token, or not a manager", body = Message, example = json!({"msg": "You are not a manager!"})),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn all_absences(
    State(app): AppState,
    _: CurrentManager,
) -> Result<Json<Vec<AbsenceRow>>, ApiError> {
    Ok(Json(read::all_absences(&app.rt.pool).await?))
}

#[utoipa::path(get, path = "/manager/future", tag = "orchestra",
    summary = "Unprocessed absences after today (managers)",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "Unprocessed future absences", body = Vec<AbsenceRow>),
        (status = 401, description = "No, a bad or an expired token, or not a manager", body = Message, example = json!({"msg": "You are not a manager!"})),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn future(
    State(app): AppState,
    _: CurrentManager,
) -> Result<Json<Vec<AbsenceRow>>, ApiError> {
    Ok(Json(
        read::future(&app.rt.pool, app.rt.clock.today()).await?,
    ))
}

#[utoipa::path(get, path = "/manager/history", tag = "orchestra",
    summary = "Processed absences before today (managers)",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "Processed past absences", body = Vec<AbsenceRow>),
        (status = 401, description = "No, a bad or an expired token, or not a manager", body = Message, example = json!({"msg": "You are not a manager!"})),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn history(
    State(app): AppState,
    _: CurrentManager,
) -> Result<Json<Vec<AbsenceRow>>, ApiError> {
    Ok(Json(
        read::history(&app.rt.pool, app.rt.clock.today()).await?,
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct Processed {
    msg: &'static str,
    #[serde(flatten)]
    absence: AbsenceRow,
}

#[utoipa::path(put, path = "/manager/{key}", tag = "orchestra",
    summary = "Approve or refuse an absence (managers)",
    security(("jwt" = [])),
    params(("key" = i64, Path, minimum = 1, description = "The absence's id"), ("Idempotency-Key" = Option<String>, Header, description = "Resending a write with the same key (and body) within 24 h returns the first answer without doing it again; the same key with another body is a 422."),),
    request_body(content(
        (ProcessBody = "application/json"),
        (ProcessBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Decided: `msg` and the absence's fields", body = Processed),
        (status = 400, description = "A field is missing or bad", body = Message, example = json!({"msg": "permission is required."})),
        (status = 401, description = "No, a bad or an expired token, or not a manager", body = Message),
        (status = 404, description = "No such absence", body = NotFound),
        (status = 413, description = "Body over 64 KiB", body = Message),
        (status = 409, description = "A request with this Idempotency-Key is still running", body = Message),
        (status = 422, description = "The Idempotency-Key was used for another request", body = Message),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn process(
    State(app): AppState,
    CurrentManager(me): CurrentManager,
    Segment(id): Segment,
    input: Input,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let permission = input
        .bool("permission")?
        .ok_or_else(|| ApiError::bad_request("permission is required."))?;
    let result = input
        .text("result")?
        .ok_or_else(|| ApiError::bad_request("result is required."))?;
    if result.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_request(format!(
            "result is longer than {MAX_REASON_CHARS} characters."
        )));
    }
    // A `processor` in the body is ignored: the processor is the caller.
    let applier = match app.appliers.get(id as u64) {
        Some(applier) => applier,
        None => {
            let applier = read::applier_of(&app.rt.pool, id)
                .await?
                .ok_or_else(ApiError::not_found)?
                .to_string();
            app.appliers.remember(id as u64, &applier);
            applier
        }
    };
    let applier_id: i64 = applier.parse().map_err(ApiError::internal)?;
    // The result is part of the applier's record: sealed with their key (an erased member's
    // absences are not found).
    let applier_subject = member_subject(applier_id as u64);
    // The applier's name (for the answer) and key, in one statement; no key: erased (404).
    let (applier_name, key) = read::name_and_key(&app.rt.pool, applier_id).await?;
    let key = key.ok_or_else(ApiError::not_found)?;
    let command = AbsenceCommand::Process {
        absence_id: id as u64,
        processor: me.id as u64,
        result: crypto::seal(&applier_subject, &key, &result),
        permission,
    };
    let committed = app
        .absences
        .execute(&applier, command, &me.actor)
        .await
        .map_err(absence_error)?;
    let applier_name = applier_name.unwrap_or_else(|| former_member(applier_id as u64));
    // The answer names the applier, and their reason.
    Ok(crate::http::naming_others(Json(Processed {
        msg: "Absence processed.",
        absence: answer(
            &committed,
            id as u64,
            &key,
            applier_name,
            Some(me.name.clone()),
        )?,
    })))
}

#[derive(Serialize)]
struct Presence {
    name: String,
    state: &'static str,
}

#[utoipa::path(get, path = "/manager/{key}/present", tag = "orchestra",
    summary = "Who is present and who absent on a date (managers)",
    security(("jwt" = [])),
    params(("key" = String, Path, description = "A date: 2026-03-12 or 2026-3-12")),
    responses(
        (status = 200, description = "Every member on the roster, in roster order", body = PresenceAnswer),
        (status = 400, description = "Not a date", body = Message, example = json!({"msg": "The date must look like 2020-03-12 or 2020-3-12."})),
        (status = 401, description = "No, a bad or an expired token, or not a manager", body = Message),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn present(
    State(app): AppState,
    _: CurrentManager,
    Segment(key): Segment,
) -> Result<Response, ApiError> {
    let date = parse_date(&key)
        .ok_or_else(|| ApiError::bad_request("The date must look like 2020-03-12 or 2020-3-12."))?;
    let members: Vec<Presence> = read::presence(&app.rt.pool, date)
        .await?
        .into_iter()
        .map(|(name, absent)| Presence {
            name,
            state: if absent { "absent" } else { "present" },
        })
        .collect();
    Ok(Json(json!({ "time": date, "members": members })).into_response())
}

#[utoipa::path(get, path = "/manager/next", tag = "orchestra",
    summary = "The absences of the next rehearsal date that has any, by section (managers)",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "The date and its absences by section, or `[]` when no future absence exists", body = NextAnswer),
        (status = 401, description = "No, a bad or an expired token, or not a manager", body = Message),
        (status = 503, description = "Busy; try again", body = Message),
    ))]
async fn next(State(app): AppState, _: CurrentManager) -> Result<Response, ApiError> {
    let Some((date, rows)) = read::next(&app.rt.pool, app.rt.clock.today()).await? else {
        return Ok(Json(json!([])).into_response());
    };
    let section = |s: &str| rows.iter().filter(|a| a.section == s).collect::<Vec<_>>();
    Ok(Json(json!({
        "time": date,
        "stringed": section("stringed"),
        "wind": section("wind"),
        "percussion": section("percussion"),
    }))
    .into_response())
}

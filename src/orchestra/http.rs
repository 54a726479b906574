//! The orchestra document's endpoints: each handler reads its body type, calls one use case
//! (`service.rs`) or one query (`projections::orchestra`), and renders the answer.

use std::sync::Arc;

use aggregates::orchestra::absences::AbsenceError;
use aggregates::orchestra::roster::RosterError;
use aggregates::orchestra::Role;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::orchestra::{absences, AbsenceRow};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{
    charge_write, look_up, unauthorized, Claims, CurrentManager, CurrentMember, ManagerAuth,
    MemberAuth,
};
use super::body::{
    self, AbsenceBody, AbsenceChangeBody, DecisionBody, LoginAnswer, LoginBody, NextAnswer,
    NextRehearsal, Presence, PresenceAnswer, Processed, MAX_TEXT_CHARS,
};
use super::context::{Orchestra, AUDIENCE};
use super::service::{self, Application, Change, Refused};
use crate::http::answers::{ReadAnswers, RetryKey, Throttled, WriteAnswers};
use crate::http::schema::{Message, NotFound};
use crate::http::{http_actor, kept, naming_others, parse_date, parse_id, ApiError, Body, Segment};
use runtime::bus::Holds;

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
        .routes(routes!(decide))
        .routes(routes!(present))
}

/// A refusal as the orchestra's clients read it (`{"msg"}` and the document's statuses).
impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Roster(e @ RosterError::NotInRoster) => {
                ApiError::msg(StatusCode::UNAUTHORIZED, e.to_string())
            }
            Refused::Roster(e) => ApiError::msg(StatusCode::FORBIDDEN, e.to_string()),
            Refused::Absence(e @ AbsenceError::QuotaExhausted) => {
                ApiError::msg(StatusCode::FORBIDDEN, e.to_string())
            }
            // The only service that fails is the database (drawing an absence id): a lost
            // session, a timeout, a full pool. Nothing was written; a retry may work.
            Refused::Absence(AbsenceError::Service(e)) => {
                tracing::warn!(error = %e, "a command's database service failed");
                ApiError::busy("The server is busy; please try again.")
            }
            Refused::Absence(e) => ApiError::bad_request(e.to_string()),
            Refused::NotFound => ApiError::not_found(),
            Refused::CallerErased => {
                ApiError::msg(StatusCode::UNAUTHORIZED, "Invalid or expired token.")
            }
            // The roster changed under the caller again while their command ran a second time
            // on what it had just said: nothing was written, and a retry sees where it settled
            // (401 then if their token no longer speaks for them).
            Refused::CallerChanged => ApiError::record_busy(),
            Refused::Taken => {
                ApiError::bad_request("This absence conflicts with an existing record.")
            }
            Refused::Busy => ApiError::record_busy(),
            Refused::Unavailable => ApiError::command_unavailable(),
            Refused::Internal(e) => ApiError::internal(e),
        }
    }
}

/// Whether the outcome of a command run as `me` (a manager when `manager`) stands, or the
/// command must run again as the caller is now (Some). A caller taken from memory is trusted
/// as far as an append confirms it: when the append found that the caller no longer holds what
/// the command was decided on (unbound, erased, another role, section or season: by any
/// process), the caller is looked up again (401 if their token no longer speaks for them) and
/// the command runs once more; when nothing was appended (a refusal, a change that changes
/// nothing), the caller is looked up again before the answer is given, and the command runs
/// again if the roster now says otherwise. See [`as_caller!`].
async fn again<T>(
    app: &Orchestra,
    me: &CurrentMember,
    manager: bool,
    outcome: &Result<T, Refused>,
) -> Result<Option<CurrentMember>, ApiError> {
    let changed = matches!(outcome, Err(Refused::CallerChanged));
    let confirmed = me.actor.holds.as_ref().is_some_and(Holds::confirmed);
    if !changed && (confirmed || !me.from_memory) {
        return Ok(None);
    }
    let (known, at) = look_up(app, me.id, me.binding).await?;
    // Found as they are now: the answer needs no other look-up (`CurrentMember::answered`).
    if let Some(holds) = &me.actor.holds {
        holds.confirm();
    }
    if manager && known.role != Role::Manager {
        return Err(unauthorized("You are not a manager!"));
    }
    if !changed && known == me.known() {
        return Ok(None);
    }
    Ok(Some(CurrentMember::new(
        me.id,
        known,
        at,
        false,
        me.actor.clone(),
    )))
}

/// `as_caller!(app, me, manager, |caller| command)`: the command's outcome as the caller `me`,
/// run again as the caller is now where [`again`] says so.
macro_rules! as_caller {
    ($app:expr, $me:expr, $manager:expr, |$caller:ident| $command:expr) => {{
        let outcome = {
            let $caller = &$me;
            $command
        };
        match again($app, &$me, $manager, &outcome).await? {
            None => outcome,
            Some(fresh) => {
                let $caller = &fresh;
                $command
            }
        }
    }};
}

// ---- login ------------------------------------------------------------------------------

#[utoipa::path(post, path = "/account/login", tag = "orchestra",
    summary = "Log in with a roster name and a wx.login() code",
    description = "WeChat is asked about the code first: without a valid code the answer says nothing about the roster. The first login binds the name to the WeChat account (the notification addresses are mailed about every binding); later logins must come from the same account. With ENSEMBLE_MANAGER_BINDING=approve a manager's first login waits for an operator's `ensemble roster approve NAME` (403 until then; every other account that tries the name meanwhile is recorded as a request of its own). Rate-limited (429 with Retry-After): attempts per client address, failures per name from one address, and failures per name from anywhere (past that ceiling an address that has not failed is still heard).",
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
        (status = 502, description = "WeChat refused the code or did not answer", body = Message, example = json!({"msg": "wx server request failed"})),
        Throttled, ReadAnswers,
    ))]
/// The name is found by its keyed hash among the reserved names, the openid by its keyed hash
/// among the bound ones: neither is ever looked up, stored or logged in clear.
async fn login(
    State(app): AppState,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Body(body): Body<LoginBody>,
) -> Result<Response, ApiError> {
    let name = body.name.required_text("name")?;
    let code = body.code.required_text("code")?;
    let limits = &app.rt.limits;
    let attempt = limits
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
                runtime::wechat::WechatError::Refused { .. } => limits.login_failed(&attempt).await,
                runtime::wechat::WechatError::Unreachable(_) => {
                    tracing::warn!(error = %e, "code2session failed");
                    limits.login_cleared(&attempt).await
                }
            }
            return Err(ApiError::msg(
                StatusCode::BAD_GATEWAY,
                "wx server request failed",
            ));
        }
    };
    let actor = |role: aggregates::orchestra::Role, subject: &str| {
        http_actor(role.as_str(), subject, &headers, &extensions)
    };
    match service::log_in(&app, &name, &openid, actor).await {
        Ok(logged_in) => {
            limits.login_cleared(&attempt).await;
            let token = app.rt.jwt.issue(
                AUDIENCE,
                Claims {
                    sub: logged_in.member_id.to_string(),
                    bnd: logged_in.binding,
                },
            );
            Ok(Json(LoginAnswer {
                msg: "login!",
                token,
            })
            .into_response())
        }
        // The same account asking again while its request waits is no failed guess.
        Err(refused @ Refused::Roster(RosterError::AwaitingApproval { same_account: true })) => {
            limits.login_cleared(&attempt).await;
            Err(refused.into())
        }
        // Wrong credentials for the name: counted against it.
        Err(refused @ (Refused::Roster(_) | Refused::NotFound)) => {
            limits.login_failed(&attempt).await;
            Err(refused.into())
        }
        Err(refused) => {
            limits.login_cleared(&attempt).await;
            Err(refused.into())
        }
    }
}

// ---- a member's own absences --------------------------------------------------------------

#[utoipa::path(get, path = "/absence", tag = "orchestra",
    summary = "The caller's absences, by date",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "The caller's absences", body = Vec<AbsenceRow>),
        MemberAuth, ReadAnswers,
    ))]
async fn my_absences(State(app): AppState, me: CurrentMember) -> Result<Response, ApiError> {
    let question = asked(&app, "/absence", &me, me.id.to_string(), String::new());
    kept::json(&app.rt, question, async {
        Ok(absences::absences_of(&app.rt.pool, me.id, &me.name).await?)
    })
    .await
}

/// What a read's answer depends on: the route, who asks (where it matters), the rest of the
/// question, today, and the read models as the caller's check found them.
fn asked(
    app: &Orchestra,
    route: &'static str,
    me: &CurrentMember,
    caller: String,
    rest: String,
) -> runtime::answers::Question {
    let today = app.rt.clock.today();
    app.rt.answers.question(route, caller, rest, today, me.at)
}

#[utoipa::path(post, path = "/absence", tag = "orchestra",
    summary = "Ask to miss a rehearsal",
    description = "Within the section's quota for the season, one absence per date, for a date after today.",
    security(("jwt" = [])),
    params(RetryKey),
    request_body(content(
        (AbsenceBody = "application/json"),
        (AbsenceBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Recorded", body = AbsenceRow),
        (status = 400, description = "A field is missing or bad, the date is not after today or taken", body = Message, example = json!({"msg": "You have already applied for an absence on this date."})),
        (status = 403, description = "The quota is used up", body = Message),
        MemberAuth, Throttled, WriteAnswers,
    ))]
async fn apply(
    State(app): AppState,
    me: CurrentMember,
    body: Result<Body<AbsenceBody>, ApiError>,
) -> Result<Response, ApiError> {
    let ticket = me.ticket();
    let answer = async {
        let Body(body) = body?;
        charge_write(&app, &me).await?;
        let asked = Application {
            date: body::date(&body.time_absence)?
                .ok_or_else(|| ApiError::bad_request("time_absence is required."))?,
            kind: body::kind(&body.kind)?
                .ok_or_else(|| ApiError::bad_request("type is required."))?,
            reason: body::reason(&body.reason)?
                .ok_or_else(|| ApiError::bad_request("reason is required."))?,
        };
        let absence = as_caller!(&app, me, false, |me| {
            service::apply(&app, me, asked.clone()).await
        })?;
        Ok((StatusCode::CREATED, Json(absence)).into_response())
    };
    CurrentMember::answered(&app, ticket, answer.await).await
}

#[utoipa::path(put, path = "/absence/{id}", tag = "orchestra",
    summary = "Change one of the caller's future absences",
    security(("jwt" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The absence's id"), RetryKey),
    request_body(content(
        (AbsenceChangeBody = "application/json"),
        (AbsenceChangeBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Changed (any earlier decision no longer holds)", body = AbsenceRow),
        (status = 400, description = "A field is bad, the absence is past, or the new date taken", body = Message),
        (status = 403, description = "The quota is used up", body = Message),
        (status = 404, description = "No such absence of the caller", body = NotFound),
        MemberAuth, Throttled, WriteAnswers,
    ))]
async fn change(
    State(app): AppState,
    me: CurrentMember,
    Segment(id): Segment,
    body: Result<Body<AbsenceChangeBody>, ApiError>,
) -> Result<Response, ApiError> {
    let ticket = me.ticket();
    let answer = async {
        let Body(body) = body?;
        charge_write(&app, &me).await?;
        let id = parse_id(&id)? as u64;
        // Fields left out keep the values the member's stream holds when the command runs (a
        // read model read earlier may lag: filling them from it could undo an earlier change).
        let change = Change {
            date: body::date(&body.time_absence)?,
            kind: body::kind(&body.kind)?,
            reason: body::reason(&body.reason)?,
        };
        let absence = as_caller!(&app, me, false, |me| {
            service::change(&app, me, id, change.clone()).await
        })?;
        // The processor, when a decision stands, is another member.
        Ok(naming_others(Json(absence)))
    };
    CurrentMember::answered(&app, ticket, answer.await).await
}

#[utoipa::path(delete, path = "/absence/{id}", tag = "orchestra",
    summary = "Cancel one of the caller's future absences",
    security(("jwt" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The absence's id"), RetryKey),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 400, description = "The absence is past", body = Message),
        (status = 404, description = "No such absence of the caller", body = NotFound),
        MemberAuth, Throttled, WriteAnswers,
    ))]
async fn cancel(
    State(app): AppState,
    me: CurrentMember,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    let ticket = me.ticket();
    let answer = async {
        charge_write(&app, &me).await?;
        let id = parse_id(&id)? as u64;
        as_caller!(&app, me, false, |me| service::cancel(&app, me, id).await)?;
        Ok(StatusCode::NO_CONTENT)
    };
    CurrentMember::answered(&app, ticket, answer.await).await
}

// ---- managers -----------------------------------------------------------------------------

#[utoipa::path(get, path = "/manager", tag = "orchestra",
    summary = "Every absence, by date (managers)",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "Every absence", body = Vec<AbsenceRow>),
        ManagerAuth, ReadAnswers,
    ))]
async fn all_absences(
    State(app): AppState,
    CurrentManager(me): CurrentManager,
) -> Result<Response, ApiError> {
    // The same for every manager.
    let question = asked(&app, "/manager", &me, String::new(), String::new());
    kept::json(&app.rt, question, async {
        Ok(absences::all_absences(&app.rt.pool).await?)
    })
    .await
}

#[utoipa::path(get, path = "/manager/future", tag = "orchestra",
    summary = "Unprocessed absences after today (managers)",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "Unprocessed future absences", body = Vec<AbsenceRow>),
        ManagerAuth, ReadAnswers,
    ))]
async fn future(
    State(app): AppState,
    CurrentManager(me): CurrentManager,
) -> Result<Response, ApiError> {
    let question = asked(&app, "/manager/future", &me, String::new(), String::new());
    let today = question.today;
    kept::json(&app.rt, question, async {
        Ok(absences::future(&app.rt.pool, today).await?)
    })
    .await
}

#[utoipa::path(get, path = "/manager/history", tag = "orchestra",
    summary = "Processed absences before today (managers)",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "Processed past absences", body = Vec<AbsenceRow>),
        ManagerAuth, ReadAnswers,
    ))]
async fn history(
    State(app): AppState,
    CurrentManager(me): CurrentManager,
) -> Result<Response, ApiError> {
    let question = asked(&app, "/manager/history", &me, String::new(), String::new());
    let today = question.today;
    kept::json(&app.rt, question, async {
        Ok(absences::history(&app.rt.pool, today).await?)
    })
    .await
}

#[utoipa::path(put, path = "/manager/{key}", tag = "orchestra",
    summary = "Approve or refuse an absence (managers)",
    security(("jwt" = [])),
    params(("key" = i64, Path, minimum = 1, description = "The absence's id"), RetryKey),
    request_body(content(
        (DecisionBody = "application/json"),
        (DecisionBody = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Decided: `msg` and the absence's fields", body = Processed),
        (status = 400, description = "A field is missing or bad", body = Message, example = json!({"msg": "permission is required."})),
        (status = 404, description = "No such absence", body = NotFound),
        ManagerAuth, WriteAnswers,
    ))]
async fn decide(
    State(app): AppState,
    CurrentManager(me): CurrentManager,
    Segment(id): Segment,
    body: Result<Body<DecisionBody>, ApiError>,
) -> Result<Response, ApiError> {
    let ticket = me.ticket();
    let answer = async {
        let Body(body) = body?;
        let id = parse_id(&id)? as u64;
        let permission = body
            .permission
            .bool("permission")?
            .ok_or_else(|| ApiError::bad_request("permission is required."))?;
        let result = body
            .result
            .text("result")?
            .ok_or_else(|| ApiError::bad_request("result is required."))?;
        if result.chars().count() > MAX_TEXT_CHARS {
            return Err(ApiError::bad_request(format!(
                "result is longer than {MAX_TEXT_CHARS} characters."
            )));
        }
        // A `processor` in the body is ignored: the processor is the caller.
        let absence = as_caller!(&app, me, true, |me| {
            service::decide(&app, me, id, &result, permission).await
        })?;
        // The answer names the applier, and their reason.
        Ok(naming_others(Json(Processed {
            msg: "Absence processed.",
            absence,
        })))
    };
    CurrentMember::answered(&app, ticket, answer.await).await
}

#[utoipa::path(get, path = "/manager/{key}/present", tag = "orchestra",
    summary = "Who is present and who absent on a date (managers)",
    security(("jwt" = [])),
    params(("key" = String, Path, description = "A date: 2026-03-12 or 2026-3-12")),
    responses(
        (status = 200, description = "Every member on the roster, in roster order", body = PresenceAnswer),
        (status = 400, description = "Not a date", body = Message, example = json!({"msg": "The date must look like 2020-03-12 or 2020-3-12."})),
        ManagerAuth, ReadAnswers,
    ))]
async fn present(
    State(app): AppState,
    CurrentManager(me): CurrentManager,
    Segment(key): Segment,
) -> Result<Response, ApiError> {
    let date = parse_date(&key)
        .ok_or_else(|| ApiError::bad_request("The date must look like 2020-03-12 or 2020-3-12."))?;
    let question = asked(
        &app,
        "/manager/{key}/present",
        &me,
        String::new(),
        date.to_string(),
    );
    kept::json(&app.rt, question, async {
        let members = absences::presence(&app.rt.pool, date)
            .await?
            .into_iter()
            .map(|(name, absent)| Presence {
                name,
                state: if absent { "absent" } else { "present" },
            })
            .collect();
        Ok(PresenceAnswer {
            time: date,
            members,
        })
    })
    .await
}

#[utoipa::path(get, path = "/manager/next", tag = "orchestra",
    summary = "The absences of the next rehearsal date that has any, by section (managers)",
    security(("jwt" = [])),
    responses(
        (status = 200, description = "The date and its absences by section, or `[]` when no future absence exists", body = NextAnswer),
        ManagerAuth, ReadAnswers,
    ))]
async fn next(
    State(app): AppState,
    CurrentManager(me): CurrentManager,
) -> Result<Response, ApiError> {
    let question = asked(&app, "/manager/next", &me, String::new(), String::new());
    let today = question.today;
    kept::json(&app.rt, question, async {
        let Some((date, rows)) = absences::next(&app.rt.pool, today).await? else {
            return Ok(NextAnswer::Nothing(Vec::new()));
        };
        let section = |s: &str| rows.iter().filter(|a| a.section == s).cloned().collect();
        Ok(NextAnswer::Rehearsal(NextRehearsal {
            time: date,
            stringed: section("stringed"),
            wind: section("wind"),
            percussion: section("percussion"),
        }))
    })
    .await
}

//! Campus users (用户端): WeChat login, email verification, profiles, deletion (erasure), and
//! the organisations they follow. Every write is a command on the user's own stream.

use std::sync::Arc;

use aggregates::campus::users::{user_subject, UserCommand, UserError, UserEvent, OPENID_SCOPE};
use aggregates::orchestra::EmailAddress;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Caller, Claims, USER};
use super::common::{
    command_failed, envelope, envelope_error, field_error, next_id, parse_positive, Fields, Page,
    Query, MAX_NAME, MAX_TEXT, MAX_URL,
};
use super::read::{self, user_json};
use super::Campus;
use super::AUDIENCE;
use crate::http::{parse_id, ApiError, Input, Segment};
use runtime::bus::CommandError;
use runtime::personal::KeyError;
use runtime::wechat::WechatError;

type AppState = State<Arc<Campus>>;

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(user_login))
        .routes(routes!(send_verify))
        .routes(routes!(verify))
        .routes(routes!(users))
        .routes(routes!(one_user, edit_user, delete_user))
        .routes(routes!(managed_envelope))
        .routes(routes!(applications_of))
        .routes(routes!(follow, unfollow))
        .routes(routes!(followed))
        .routes(routes!(managed))
}

/// What a nameless WeChat user is called.
const DEFAULT_NAME: &str = "微信用户";

fn wechat_failed(e: WechatError) -> ApiError {
    match e {
        WechatError::Refused { errcode, errmsg } => ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"status": 1, "errcode": errcode, "msg": errmsg}),
        ),
        WechatError::Unreachable(e) => {
            tracing::warn!(error = %e, "code2session failed");
            ApiError::Body(
                StatusCode::BAD_GATEWAY,
                json!({"status": 1, "errcode": -1, "msg": "wx server request failed"}),
            )
        }
    }
}

/// `userInfo`: an object, or (from a form) its JSON text, as WeChat's profile gives it. The
/// nickname is taken as WeChat has it, without control and hidden characters (zero-width,
/// bidirectional) and cut to its first 100 characters: the user cannot change it here. The
/// avatar must be an http(s) URL of at most 1,000 characters (a field error otherwise: it is
/// loaded by other users' pages).
fn user_info(input: &Input) -> Result<(Option<String>, Option<String>), ()> {
    let info = match input.0.get("userInfo") {
        Some(Value::Object(map)) => Value::Object(map.clone()),
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let name = info["nickName"]
        .as_str()
        .map(|s| {
            aggregates::text::without_hidden_characters(s.trim())
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_NAME)
                .collect::<String>()
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty());
    let avatar = match info["avatarUrl"].as_str().map(str::trim) {
        None | Some("") => None,
        Some(avatar) => Some(
            super::common::web_url(avatar)
                .filter(|url| url.chars().count() <= MAX_URL)
                .ok_or(())?,
        ),
    };
    Ok((name, avatar))
}

#[utoipa::path(post, path = "/login", tag = "campus",
    summary = "Log in with a wx.login() code (a new user is registered)",
    description = "A new user's name and avatar come from `userInfo` (WeChat's profile: `nickName`, `avatarUrl`). The nickname is kept as WeChat has it, without control and hidden characters (zero-width, bidirectional), cut to its first 100 characters; a blank one gives the default name. The avatar must be an http(s) URL of at most 1,000 characters (400 `{\"avatarUrl\": [...]}` otherwise). Rate-limited per client address (429 with Retry-After).",
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Logged in", body = Object, example = json!({"status": 0, "userExist": 1, "token": "…", "email": "", "id": 1, "avatar": "https://…", "sign": "", "name": "用户1"})),
        (status = 400, description = "No code, an avatar that is not an http(s) URL, or WeChat refused the code", body = Object, example = json!({"status": 1, "errcode": 40029, "msg": "invalid code"})),
        (status = 429, description = "Too many attempts", body = Object),
        (status = 502, description = "WeChat did not answer", body = Object),
        (status = 503, description = "Busy; try again", body = Object),
    ))]
async fn login(
    State(app): AppState,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    input: Input,
) -> Result<Response, ApiError> {
    login_with(app, headers, extensions, input).await
}

#[utoipa::path(post, path = "/userLogin", tag = "campus",
    summary = "The same as /login",
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Logged in", body = Object),
        (status = 400, description = "No code, or WeChat refused it", body = Object),
        (status = 429, description = "Too many attempts", body = Object),
        (status = 502, description = "WeChat did not answer", body = Object),
    ))]
async fn user_login(
    State(app): AppState,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    input: Input,
) -> Result<Response, ApiError> {
    login_with(app, headers, extensions, input).await
}

/// name, avatar, email, sign
type Profile = (String, Option<String>, Option<String>, Option<String>);

/// The openid is found by its keyed hash among the registered ones; a new one registers a
/// user whose name and avatar (WeChat's `nickName`, `avatarUrl`) are sealed with their key.
async fn login_with(
    app: Arc<Campus>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    input: Input,
) -> Result<Response, ApiError> {
    let code = input.text("code")?.unwrap_or_default();
    if code.trim().is_empty() {
        return Err(field_error("code", super::common::REQUIRED));
    }
    // Per client address only: the login names nobody (a WeChat code is single-use).
    app.rt
        .limits
        .login_attempt(
            &app.rt.keys,
            crate::http::client_address(&extensions),
            "campus-login",
            None,
        )
        .await?;
    let openid = app
        .rt
        .wechat
        .code2session(&app.credentials, code.trim())
        .await
        .map_err(wechat_failed)?;
    let blind = app.rt.keys.blind(OPENID_SCOPE, &openid);
    let mut exists = true;
    let id = match app.rt.keys.owner(OPENID_SCOPE, blind).await? {
        Some(owner) => aggregates::campus::users::user_of_subject(&owner)
            .ok_or_else(|| ApiError::internal("an openid reserved by a non-user"))?,
        None => {
            // Read only for a new user (the profile of one who exists is theirs to edit).
            let (name, avatar) = user_info(&input)
                .map_err(|()| field_error("avatarUrl", super::common::NOT_A_WEB_URL))?;
            let id = next_id(&app, "campus_user_id_seq").await?;
            let subject = user_subject(id);
            let key = app.rt.keys.create(&subject).await?;
            let seal = |v: &str| runtime::personal::seal(&subject, &key, v);
            let command = UserCommand::Register {
                user_id: id,
                openid: app
                    .rt
                    .keys
                    .seal_unique_with(&subject, &key, OPENID_SCOPE, &openid),
                name: seal(name.as_deref().unwrap_or(DEFAULT_NAME)),
                avatar: avatar.as_deref().map(seal),
            };
            let actor = crate::http::http_actor(USER, &subject, &headers, &extensions);
            match app.users.execute(&id.to_string(), command, &actor).await {
                Ok(_) => {
                    exists = false;
                    id
                }
                // The same account registered meanwhile (a racing login): theirs it is.
                Err(CommandError::Duplicate) => app
                    .rt
                    .keys
                    .owner(OPENID_SCOPE, blind)
                    .await?
                    .as_deref()
                    .and_then(aggregates::campus::users::user_of_subject)
                    .ok_or_else(|| ApiError::busy("Please try again."))?,
                Err(e) => return Err(command_failed(e)),
            }
        }
    };
    let profile: Option<Profile> = sqlx::query_as(
        "SELECT name, avatar, email, sign FROM campus_users WHERE id = $1 AND NOT deleted",
    )
    .bind(id as i64)
    .fetch_optional(&app.rt.pool)
    .await?;
    let (name, avatar, email, sign) =
        profile.ok_or_else(|| ApiError::busy("Your account is being set up; please try again."))?;
    let token = app.rt.jwt.issue(
        AUDIENCE,
        Claims {
            sub: id.to_string(),
            kind: USER.into(),
        },
    );
    Ok(Json(json!({
        "status": 0,
        "userExist": if exists { 1 } else { 0 },
        "token": token,
        "email": email.unwrap_or_default(),
        "id": id,
        "avatar": avatar,
        "sign": sign.unwrap_or_default(),
        "name": name,
    }))
    .into_response())
}

fn status_body(status: StatusCode, code: i32, msg: &str) -> ApiError {
    ApiError::Body(status, json!({"status": code, "msg": msg}))
}

fn must_be_user(caller: &Caller) -> Result<u64, ApiError> {
    caller.user().ok_or_else(super::auth::forbidden)
}

/// The caller's key, or 401 once they are erased.
async fn key_of(app: &Campus, id: u64) -> Result<runtime::personal::Key, ApiError> {
    app.rt
        .keys
        .key(&user_subject(id))
        .await
        .map_err(|e| match e {
            KeyError::Forgotten => super::auth::invalid_token(),
            e => e.into(),
        })
}

#[utoipa::path(post, path = "/sendVerify", tag = "campus",
    summary = "Mail a 6-digit code to the address being verified (valid 10 minutes)",
    description = "Needs the user's token. One mail per address per minute (429). The mail is sent from the event log, after the answer.",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Queued", body = Object, example = json!({"status": 0, "msg": "Email send"})),
        (status = 400, description = "Not an address", body = Object, example = json!({"status": 1, "msg": "Invalid email"})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Not a user", body = Object),
        (status = 429, description = "A code went to this address less than a minute ago", body = Object),
    ))]
async fn send_verify(State(app): AppState, me: Caller, input: Input) -> Result<Response, ApiError> {
    let id = must_be_user(&me)?;
    let email = input
        .text("email")?
        .and_then(|e| EmailAddress::parse(&e).ok())
        .ok_or_else(|| status_body(StatusCode::BAD_REQUEST, 1, "Invalid email"))?;
    app.rt
        .limits
        .check_verification_mail(&app.rt.keys, &user_subject(id), email.as_str())
        .await?;
    let code = {
        use rand::Rng;
        format!("{:06}", rand::rng().random_range(0..1_000_000u32))
    };
    let subject = user_subject(id);
    let key = key_of(&app, id).await?;
    let command = UserCommand::IssueCode {
        email: runtime::personal::seal(&subject, &key, email.as_str()),
        code: runtime::personal::seal(&subject, &key, &code),
        at: chrono::Utc::now(),
    };
    app.users
        .execute(&id.to_string(), command, &me.actor)
        .await
        .map_err(|e| match e {
            CommandError::Rejected(UserError::Unknown) => super::auth::invalid_token(),
            e => command_failed(e),
        })?;
    Ok(Json(json!({"status": 0, "msg": "Email send"})).into_response())
}

#[utoipa::path(post, path = "/verify", tag = "campus",
    summary = "Check a mailed code; the address becomes the user's email",
    description = "Five wrong tries burn the code.",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Verified", body = Object, example = json!({"status": 0, "msg": "Valid Code"})),
        (status = 400, description = "Wrong, expired or burnt code", body = Object, example = json!({"status": 1, "msg": "Invalid Code"})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "`id` is not the caller", body = Object),
    ))]
async fn verify(State(app): AppState, me: Caller, input: Input) -> Result<Response, ApiError> {
    let me_id = must_be_user(&me)?;
    let mut fields = Fields::default();
    let code = fields.text(&input, "verifyCode", true, 32, true);
    let email = fields.text(&input, "email", true, 254, true);
    let id = fields.id(&input, "id");
    fields.check()?;
    let (Some(code), Some(email), Some((id, _))) = (code, email, id) else {
        return Err(ApiError::internal("checked fields missing"));
    };
    if id != me_id as i64 {
        return Err(super::auth::forbidden());
    }
    let invalid = || status_body(StatusCode::BAD_REQUEST, 1, "Invalid Code");
    let email = EmailAddress::parse(&email).map_err(|_| invalid())?;
    let subject = user_subject(me_id);
    let key = key_of(&app, me_id).await?;
    let command = UserCommand::TryCode {
        email: runtime::personal::seal(&subject, &key, email.as_str()),
        code: runtime::personal::seal(&subject, &key, code.trim()),
        at: chrono::Utc::now(),
    };
    match app
        .users
        .execute(&me_id.to_string(), command, &me.actor)
        .await
    {
        Ok(committed)
            if committed
                .events
                .iter()
                .any(|e| matches!(e, UserEvent::EmailVerified { .. })) =>
        {
            Ok(Json(json!({"status": 0, "msg": "Valid Code"})).into_response())
        }
        Ok(_) | Err(CommandError::Rejected(UserError::NoCode)) => Err(invalid()),
        Err(CommandError::Rejected(UserError::Unknown)) => Err(super::auth::invalid_token()),
        Err(e) => Err(command_failed(e)),
    }
}

use super::read::USER_SELECT;

#[utoipa::path(get, path = "/users", tag = "campus",
    summary = "Every user (superusers), or with ?id= one user in the {status, msg, results} envelope",
    security(("jwt" = [])),
    params(("id" = Option<i64>, Query, description = "One user, in the envelope"),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "The users, or the envelope", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "The plain list is for superusers", body = Object),
    ))]
async fn users(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Response, ApiError> {
    if let Some(raw) = query.get("id") {
        let found = match parse_positive(raw) {
            Some(id) => {
                read::one(
                    &app.rt.pool,
                    &format!("SELECT {} {USER_SELECT} AND u.id = $3", user_json("u")),
                    me.viewer(),
                    app.rt.config.tz.name(),
                    id,
                )
                .await?
            }
            None => None,
        };
        return Ok(Json(match found {
            Some(user) => envelope(user),
            None => envelope_error("invalid userID"),
        })
        .into_response());
    }
    me.superuser()?;
    let list = read::list(&app, me.viewer(), &page, &read::Listing::users(), &[]).await?;
    Ok(Json(list).into_response())
}

async fn user_answer(app: &Campus, me: &Caller, id: i64) -> Result<Value, ApiError> {
    read::one(
        &app.rt.pool,
        &format!("SELECT {} {USER_SELECT} AND u.id = $3", user_json("u")),
        me.viewer(),
        app.rt.config.tz.name(),
        id,
    )
    .await?
    .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/users/{id}", tag = "campus",
    summary = "One user",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The user", body = serde_json::Value),
        (status = 401, description = "Not logged in", body = Object),
        (status = 404, description = "No such user", body = Object, example = json!({"detail": "未找到。"})),
    ))]
async fn one_user(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(user_answer(&app, &me, id).await?).into_response())
}

#[utoipa::path(put, path = "/users/{id}", tag = "campus",
    summary = "A user changes their name and signature",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The user as changed", body = Object),
        (status = 400, description = "Name missing or blank", body = Object, example = json!({"name": ["该字段是必填项。"]})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Not this user", body = Object),
        (status = 404, description = "No such user", body = Object),
    ))]
async fn edit_user(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    input: Input,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // Only the user themself (whom the token check has just found): anyone else learns whether
    // the user exists, as the document's 404 says.
    if me.user() != Some(id as u64) {
        return Err(if read::user_exists(&app.rt.pool, id).await? {
            super::auth::forbidden()
        } else {
            ApiError::not_found()
        });
    }
    let mut fields = Fields::default();
    let name = fields.text(&input, "name", true, MAX_NAME, true);
    let sign = fields.text(&input, "sign", false, MAX_TEXT, false);
    fields.check()?;
    let name = name.ok_or_else(|| ApiError::internal("checked name missing"))?;
    let subject = user_subject(id as u64);
    let key = key_of(&app, id as u64).await?;
    let command = UserCommand::EditProfile {
        name: runtime::personal::seal(&subject, &key, &name),
        sign: sign
            .as_deref()
            .map(|s| runtime::personal::seal(&subject, &key, s)),
    };
    app.users
        .execute(&id.to_string(), command, &me.actor)
        .await
        .map_err(|e| match e {
            // Only they may edit it: they were erased, and their token outlived them.
            CommandError::Rejected(UserError::Unknown) => super::auth::invalid_token(),
            e => command_failed(e),
        })?;
    // What was committed, whether or not the read model holds it yet.
    let mut answer = user_answer(&app, &me, id).await?;
    answer["name"] = json!(name);
    if let Some(sign) = sign {
        answer["sign"] = json!(sign);
    }
    Ok(Json(answer).into_response())
}

#[utoipa::path(delete, path = "/users/{id}", tag = "campus",
    summary = "Delete a user (the user themself or a superuser): their personal data is erased",
    description = "Their key is destroyed: name, avatar, signature, email, openid, feedback and application texts become unreadable everywhere. Their follows and appointments end; organisations they own stay, shown with the owner 已注销用户, until a superuser hands them over.",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Neither this user nor a superuser", body = Object),
        (status = 404, description = "No such user", body = Object),
    ))]
async fn delete_user(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // The user themself was just found by the token check; anyone else's target is looked up.
    if me.user() != Some(id as u64) && !read::user_exists(&app.rt.pool, id).await? {
        return Err(ApiError::not_found());
    }
    me.is_or_superuser(id)?;
    app.users
        .execute(&id.to_string(), UserCommand::Delete, &me.actor)
        .await
        .map_err(|e| match e {
            // Deleted meanwhile: by themselves (their token is dead) or by someone else.
            CommandError::Rejected(UserError::Unknown) if me.user() == Some(id as u64) => {
                super::auth::invalid_token()
            }
            CommandError::Rejected(UserError::Unknown) => ApiError::not_found(),
            e => command_failed(e),
        })?;
    // In the background (the answer does not wait for it), on a task a hung-up client cannot
    // stop; the sweeper finishes what a dying process leaves.
    let app2 = app.clone();
    tokio::spawn(async move { super::organizations::withdraw_orphaned(&app2, Some(id)).await });
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/users/organizations", tag = "campus",
    summary = "The organisations a user manages, in the envelope (?id=&user_view=True)",
    security(("jwt" = [])),
    params(("id" = i64, Query), ("user_view" = Option<String>, Query)),
    responses(
        (status = 200, description = "The envelope; `status: 1` for an unknown user", body = serde_json::Value),
        (status = 401, description = "Not logged in", body = Object),
    ))]
async fn managed_envelope(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Response, ApiError> {
    let Some(id) = query.get("id").and_then(parse_positive) else {
        return Ok(Json(envelope_error("invalid userID")).into_response());
    };
    if !read::user_exists(&app.rt.pool, id).await? {
        return Ok(Json(envelope_error("invalid userID")).into_response());
    }
    let list = read::list(
        &app,
        me.viewer(),
        &page,
        &read::Listing::managed_with_person(),
        &[id],
    )
    .await?;
    Ok(Json(envelope(list)).into_response())
}

#[utoipa::path(get, path = "/users/organizations/applications/{id}", tag = "campus",
    summary = "A user's applications to found organisations (the user themself or a superuser)",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The applications", body = serde_json::Value),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Neither this user nor a superuser", body = Object),
    ))]
async fn applications_of(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    page: Page,
) -> Result<Response, ApiError> {
    // Not a user id: nobody's, so a superuser gets `[]` (as for an unknown user) and a user
    // is refused (it is not theirs).
    let id = parse_positive(&id).unwrap_or(0);
    me.is_or_superuser(id)?;
    let list = read::list(
        &app,
        me.viewer(),
        &page,
        &read::Listing::applications_of_user(),
        &[id],
    )
    .await?;
    Ok(Json(list).into_response())
}

#[utoipa::path(post, path = "/users/followed_organizations", tag = "campus",
    summary = "Follow an organisation (`person` must be the caller, unless a superuser)",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Following", body = Object, example = json!({"id": 1, "org": 3, "person": 7})),
        (status = 400, description = "No such organisation or user, or following already", body = Object, example = json!({"non_field_errors": ["已关注该组织。"]})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "`person` is someone else", body = Object),
    ))]
async fn follow(State(app): AppState, me: Caller, input: Input) -> Result<Response, ApiError> {
    let (org, _, person) =
        super::common::org_and_person(&app, &input, |person| me.is_or_superuser(person)).await?;
    let follow_id = next_id(&app, "campus_follow_id_seq").await?;
    let command = UserCommand::Follow {
        follow_id,
        organization_id: org as u64,
    };
    match app
        .users
        .execute(&person.to_string(), command, &me.actor)
        .await
    {
        Ok(_) => Ok((
            StatusCode::CREATED,
            Json(json!({"id": follow_id, "org": org, "person": person})),
        )
            .into_response()),
        Err(CommandError::Rejected(UserError::AlreadyFollowing)) => Err(ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["已关注该组织。"]}),
        )),
        Err(CommandError::Rejected(UserError::Unknown)) | Err(CommandError::Gone)
            if me.is_superuser() =>
        {
            Err(field_error(
                "person",
                &super::common::invalid_pk(&person.to_string()),
            ))
        }
        Err(CommandError::Rejected(UserError::Unknown)) => Err(super::auth::invalid_token()),
        Err(e) => Err(command_failed(e)),
    }
}

#[utoipa::path(delete, path = "/users/followed_organizations", tag = "campus",
    summary = "Stop following (?user=&org=; `user` must be the caller, unless a superuser)",
    security(("jwt" = [])),
    params(("user" = i64, Query), ("org" = i64, Query)),
    responses(
        (status = 204, description = "Not following (any more)"),
        (status = 400, description = "A parameter is missing or not an id", body = Object),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "`user` is someone else", body = Object),
    ))]
async fn unfollow(State(app): AppState, me: Caller, query: Query) -> Result<Response, ApiError> {
    let (user, org) = pair(&query)?;
    me.is_or_superuser(user)?;
    if read::user_exists(&app.rt.pool, user).await? {
        let command = UserCommand::Unfollow {
            organization_id: org as u64,
        };
        match app
            .users
            .execute(&user.to_string(), command, &me.actor)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(UserError::Unknown)) => {}
            Err(e) => return Err(command_failed(e)),
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `?user=&org=` as two ids (400 naming what is wrong).
pub fn pair(query: &Query) -> Result<(i64, i64), ApiError> {
    let mut fields = Fields::default();
    let mut get = |name: &str| match query.get(name) {
        None | Some("") => {
            fields.add(name, super::common::REQUIRED);
            None
        }
        Some(raw) => parse_positive(raw).or_else(|| {
            fields.add(name, super::common::NOT_AN_INTEGER);
            None
        }),
    };
    let (user, org) = (get("user"), get("org"));
    fields.check()?;
    Ok((user.unwrap_or_default(), org.unwrap_or_default()))
}

#[utoipa::path(get, path = "/users/followed_organizations/{id}", tag = "campus",
    summary = "The organisations a user follows",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "`[{org}]`; `[]` for an unknown user", body = serde_json::Value),
        (status = 401, description = "Not logged in", body = Object),
    ))]
async fn followed(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    page: Page,
) -> Result<Response, ApiError> {
    let listing = read::Listing::orgs_of("campus_follows");
    Ok(Json(read::list_of(&app, me.viewer(), &page, &listing, &id).await?).into_response())
}

#[utoipa::path(get, path = "/users/managed_organizations/{id}", tag = "campus",
    summary = "The organisations a user manages",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "`[{org}]`; `[]` for an unknown user", body = serde_json::Value),
        (status = 401, description = "Not logged in", body = Object),
    ))]
async fn managed(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    page: Page,
) -> Result<Response, ApiError> {
    let listing = read::Listing::orgs_of("campus_managers");
    Ok(Json(read::list_of(&app, me.viewer(), &page, &listing, &id).await?).into_response())
}

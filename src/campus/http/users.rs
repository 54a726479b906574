//! Users: `login/` (= `userLogin/`), `sendVerify/`, `verify/`, `users/...` and the
//! organisations they follow or manage.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::campus::read::{user_json, Listing, USER_SELECT};
use runtime::wechat::WechatError;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{list, list_of, one};
use crate::campus::auth::{Caller, Claims, Permitted, SignedIn, USER};
use crate::campus::body::{
    DetailNotFound, OrgPersonBody, ProfileBody, SendVerifyBody, VerifyBody, WxLoginBody,
};
use crate::campus::context::{Campus, AUDIENCE};
use crate::campus::fields::{
    envelope, envelope_error, field_error, pair, parse_positive, Page, Query, REQUIRED,
};
use crate::campus::service::users;
use crate::http::answers::{BadRetryKey, ReadAnswers, RetryKey, Throttled, WriteAnswers};
use crate::http::{http_actor, parse_id, ApiError, Body, Segment};

type AppState = State<Arc<Campus>>;

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(user_login))
        .routes(routes!(send_verify))
        .routes(routes!(verify))
        .routes(routes!(all_users))
        .routes(routes!(one_user, edit_user, delete_user))
        .routes(routes!(managed_envelope))
        .routes(routes!(applications_of))
        .routes(routes!(follow, unfollow))
        .routes(routes!(followed))
        .routes(routes!(managed))
}

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

#[utoipa::path(post, path = "/login", tag = "campus",
    summary = "Log in with a wx.login() code (a new user is registered)",
    description = "A new user's name and avatar come from `userInfo` (WeChat's profile: `nickName`, `avatarUrl`), read only when the login registers them. The nickname is kept as WeChat has it, without control and hidden characters (zero-width, bidirectional), cut to its first 100 characters; a blank one gives the default name. The avatar must be an http(s) URL of at most 1,000 characters (400 `{\"avatarUrl\": [...]}` otherwise). Rate-limited per client address (429 with Retry-After).",
    request_body(content((WxLoginBody = "application/json"), (WxLoginBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Logged in", body = Object, example = json!({"status": 0, "userExist": 1, "token": "…", "email": "", "id": 1, "avatar": "https://…", "sign": "", "name": "用户1"})),
        (status = 400, description = "No code, an avatar that is not an http(s) URL, or WeChat refused the code", body = Object, example = json!({"status": 1, "errcode": 40029, "msg": "invalid code"})),
        (status = 413, description = "Body over 64 KiB", body = Object),
        (status = 502, description = "WeChat did not answer", body = Object),
        Throttled, ReadAnswers,
    ))]
async fn login(
    State(app): AppState,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    Body(body): Body<WxLoginBody>,
) -> Result<Response, ApiError> {
    log_in(app, headers, extensions, body).await
}

#[utoipa::path(post, path = "/userLogin", tag = "campus",
    summary = "The same as /login",
    request_body(content((WxLoginBody = "application/json"), (WxLoginBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Logged in", body = Object),
        (status = 400, description = "No code, or WeChat refused it", body = Object),
        (status = 413, description = "Body over 64 KiB", body = Object),
        (status = 502, description = "WeChat did not answer", body = Object),
        Throttled, ReadAnswers,
    ))]
async fn user_login(
    State(app): AppState,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    Body(body): Body<WxLoginBody>,
) -> Result<Response, ApiError> {
    log_in(app, headers, extensions, body).await
}

async fn log_in(
    app: Arc<Campus>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
    body: WxLoginBody,
) -> Result<Response, ApiError> {
    let code = body.code.text("code")?.unwrap_or_default();
    if code.trim().is_empty() {
        return Err(field_error("code", REQUIRED));
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
    let actor = |subject: &str| http_actor(USER, subject, &headers, &extensions);
    let logged_in = users::log_in(&app, &openid, &body.user_info, actor).await?;
    let (name, avatar, email, sign) = logged_in.profile;
    let token = app.rt.jwt.issue(
        AUDIENCE,
        Claims {
            sub: logged_in.id.to_string(),
            kind: USER.into(),
        },
    );
    Ok(Json(json!({
        "status": 0,
        "userExist": if logged_in.existed { 1 } else { 0 },
        "token": token,
        "email": email.unwrap_or_default(),
        "id": logged_in.id,
        "avatar": avatar,
        "sign": sign.unwrap_or_default(),
        "name": name,
    }))
    .into_response())
}

#[utoipa::path(post, path = "/sendVerify", tag = "campus",
    summary = "Mail a 6-digit code to the address being verified (valid 10 minutes)",
    description = "Needs the user's token. One mail per address per minute, three per user (429). The mail is sent from the event log, after the answer.",
    security(("jwt" = [])),
    params(RetryKey),
    request_body(content((SendVerifyBody = "application/json"), (SendVerifyBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Queued", body = Object, example = json!({"status": 0, "msg": "Email send"})),
        (status = 400, description = "Not an address", body = Object, example = json!({"status": 1, "msg": "Invalid email"})),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn send_verify(
    State(app): AppState,
    me: Caller,
    Body(body): Body<SendVerifyBody>,
) -> Result<Json<Value>, ApiError> {
    users::send_verification(&app, &me, &body).await?;
    Ok(Json(json!({"status": 0, "msg": "Email send"})))
}

#[utoipa::path(post, path = "/verify", tag = "campus",
    summary = "Check a mailed code; the address becomes the user's email",
    description = "Five wrong tries burn the code.",
    security(("jwt" = [])),
    params(RetryKey),
    request_body(content((VerifyBody = "application/json"), (VerifyBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Verified", body = Object, example = json!({"status": 0, "msg": "Valid Code"})),
        (status = 400, description = "Wrong, expired or burnt code", body = Object, example = json!({"status": 1, "msg": "Invalid Code"})),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn verify(
    State(app): AppState,
    me: Caller,
    Body(body): Body<VerifyBody>,
) -> Result<Json<Value>, ApiError> {
    users::verify(&app, &me, &body).await?;
    Ok(Json(json!({"status": 0, "msg": "Valid Code"})))
}

#[utoipa::path(get, path = "/users", tag = "campus",
    summary = "Every user (superusers), or with ?id= one user in the {status, msg, results} envelope",
    security(("jwt" = [])),
    params(("id" = Option<i64>, Query, description = "One user, in the envelope"),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "The users, or the envelope", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        Permitted, ReadAnswers,
    ))]
async fn all_users(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    if let Some(raw) = query.get("id") {
        let found = match parse_positive(raw) {
            Some(id) => one(&app, &me, &user_by_id(), id).await?,
            None => None,
        };
        return Ok(Json(match found {
            Some(user) => envelope(user),
            None => envelope_error("invalid userID"),
        }));
    }
    me.superuser()?;
    Ok(Json(list(&app, &me, &page, &Listing::users(), &[]).await?))
}

fn user_by_id() -> String {
    format!("SELECT {} {USER_SELECT} AND u.id = $3", user_json("u"))
}

async fn user_answer(app: &Campus, me: &Caller, id: i64) -> Result<Value, ApiError> {
    one(app, me, &user_by_id(), id)
        .await?
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/users/{id}", tag = "campus",
    summary = "One user",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The user", body = serde_json::Value),
        (status = 404, description = "No such user", body = DetailNotFound, example = json!({"detail": "未找到。"})),
        SignedIn, ReadAnswers,
    ))]
async fn one_user(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(user_answer(&app, &me, parse_id(&id)?).await?))
}

#[utoipa::path(put, path = "/users/{id}", tag = "campus",
    summary = "A user changes their name and signature",
    security(("jwt" = [])),
    params(("id" = i64, Path), RetryKey),
    request_body(content((ProfileBody = "application/json"), (ProfileBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The user as changed", body = Object),
        (status = 400, description = "Name missing or blank", body = Object, example = json!({"name": ["该字段是必填项。"]})),
        (status = 404, description = "No such user", body = DetailNotFound),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn edit_user(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    Body(body): Body<ProfileBody>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (name, sign) = users::edit_profile(&app, &me, id, &body).await?;
    // What was committed, whether or not the read model holds it yet.
    let mut answer = user_answer(&app, &me, id).await?;
    answer["name"] = json!(name);
    if let Some(sign) = sign {
        answer["sign"] = json!(sign);
    }
    Ok(Json(answer))
}

#[utoipa::path(delete, path = "/users/{id}", tag = "campus",
    summary = "Delete a user (the user themself or a superuser): their personal data is erased",
    description = "Their key is destroyed: name, avatar, signature, email, openid, feedback and application texts become unreadable everywhere. Their follows and appointments end; organisations they own stay, shown with the owner 已注销用户, until a superuser hands them over.",
    security(("jwt" = [])),
    params(("id" = i64, Path), RetryKey),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user", body = DetailNotFound),
        Permitted, Throttled, BadRetryKey, WriteAnswers,
    ))]
async fn delete_user(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    users::delete(&app, &me, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/users/organizations", tag = "campus",
    summary = "The organisations a user manages, in the envelope (?id=&user_view=True)",
    security(("jwt" = [])),
    params(("id" = i64, Query), ("user_view" = Option<String>, Query)),
    responses(
        (status = 400, description = "A bad query parameter, in DRF's field shape", body = Object),
        (status = 200, description = "The envelope; `status: 1` for an unknown user", body = serde_json::Value),
        SignedIn, ReadAnswers,
    ))]
async fn managed_envelope(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    let Some(id) = query.get("id").and_then(parse_positive) else {
        return Ok(Json(envelope_error("invalid userID")));
    };
    if !projections::campus::read::user_exists(&app.rt.pool, id).await? {
        return Ok(Json(envelope_error("invalid userID")));
    }
    let found = list(&app, &me, &page, &Listing::managed_with_person(), &[id]).await?;
    Ok(Json(envelope(found)))
}

#[utoipa::path(get, path = "/users/organizations/applications/{id}", tag = "campus",
    summary = "A user's applications to found organisations (the user themself or a superuser)",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The applications", body = serde_json::Value),
        Permitted, ReadAnswers,
    ))]
async fn applications_of(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    // Not a user id: nobody's, so a superuser gets `[]` (as for an unknown user) and a user
    // is refused (it is not theirs).
    let id = parse_positive(&id).unwrap_or(0);
    me.is_or_superuser(id)?;
    Ok(Json(
        list(&app, &me, &page, &Listing::applications_of_user(), &[id]).await?,
    ))
}

#[utoipa::path(post, path = "/users/followed_organizations", tag = "campus",
    summary = "Follow an organisation (`person` must be the caller, unless a superuser)",
    security(("jwt" = [])),
    params(RetryKey),
    request_body(content((OrgPersonBody = "application/json"), (OrgPersonBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Following", body = Object, example = json!({"id": 1, "org": 3, "person": 7})),
        (status = 400, description = "No such organisation or user, or following already", body = Object, example = json!({"non_field_errors": ["已关注该组织。"]})),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn follow(
    State(app): AppState,
    me: Caller,
    Body(body): Body<OrgPersonBody>,
) -> Result<Response, ApiError> {
    let (id, org, person) = users::follow(&app, &me, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "org": org, "person": person})),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/users/followed_organizations", tag = "campus",
    summary = "Stop following (?user=&org=; `user` must be the caller, unless a superuser)",
    security(("jwt" = [])),
    params(("user" = i64, Query), ("org" = i64, Query), RetryKey),
    responses(
        (status = 204, description = "Not following (any more)"),
        (status = 400, description = "A parameter is missing or not an id", body = Object),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn unfollow(State(app): AppState, me: Caller, query: Query) -> Result<StatusCode, ApiError> {
    let (user, org) = pair(&query)?;
    users::unfollow(&app, &me, user, org).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/users/followed_organizations/{id}", tag = "campus",
    summary = "The organisations a user follows",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "`[{org}]`; `[]` for an unknown user", body = serde_json::Value),
        SignedIn, ReadAnswers,
    ))]
async fn followed(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    let listing = Listing::orgs_of("campus_follows");
    Ok(Json(list_of(&app, &me, &page, &listing, &id).await?))
}

#[utoipa::path(get, path = "/users/managed_organizations/{id}", tag = "campus",
    summary = "The organisations a user manages",
    security(("jwt" = [])),
    params(("id" = i64, Path)),
    responses(
        (status = 200, description = "`[{org}]`; `[]` for an unknown user", body = serde_json::Value),
        SignedIn, ReadAnswers,
    ))]
async fn managed(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    let listing = Listing::orgs_of("campus_managers");
    Ok(Json(list_of(&app, &me, &page, &listing, &id).await?))
}

//! Campus users (用户端): WeChat login, email verification, profiles, deletion (erasure), and
//! the organisations they follow. Every write is a command on the user's own stream.

use aggregates::campus::users::{
    user_of_subject, user_subject, UserCommand, UserError, UserEvent, OPENID_SCOPE,
};
use aggregates::orchestra::EmailAddress;
use axum::http::StatusCode;
use projections::campus::read;
use runtime::bus::{Actor, CommandError};
use runtime::personal::seal;
use serde_json::{json, Value};

use super::{command_failed, key_of, next_id, org_and_person};
use crate::campus::auth::{forbidden, invalid_token, Caller};
use crate::campus::body::{OrgPersonBody, ProfileBody, SendVerifyBody, VerifyBody};
use crate::campus::context::Campus;
use crate::campus::fields::{
    field_error, invalid_pk, web_url, Fields, MAX_NAME, MAX_TEXT, MAX_URL,
};
use crate::http::{ApiError, Field};

/// What a nameless WeChat user is called.
pub const DEFAULT_NAME: &str = "微信用户";

/// A logged-in user: their id, whether they existed before this login, and their profile
/// (name, avatar, email, signature).
pub struct LoggedIn {
    pub id: u64,
    pub existed: bool,
    pub profile: read::Profile,
}

/// `userInfo`: an object, or (from a form) its JSON text, as WeChat's profile gives it. The
/// nickname is taken as WeChat has it, without control and hidden characters (zero-width,
/// bidirectional) and cut to its first 100 characters: the user cannot change it here. The
/// avatar must be an http(s) URL of at most 1,000 characters (a field error otherwise: it is
/// loaded by other users' pages).
fn user_info(user_info: &Field) -> Result<(Option<String>, Option<String>), ApiError> {
    let info = match user_info.value() {
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
            web_url(avatar)
                .filter(|url| url.chars().count() <= MAX_URL)
                .ok_or_else(|| field_error("avatarUrl", crate::campus::fields::NOT_A_WEB_URL))?,
        ),
    };
    Ok((name, avatar))
}

/// The WeChat account `openid` (asked of WeChat already) logs in: found by its keyed hash
/// among the registered ones, or registered as a new user whose name and avatar (from
/// `user_info`, read only then) are sealed with their key. `actor_of` makes the actor of a
/// registration from the new user's subject.
pub async fn log_in(
    app: &Campus,
    openid: &str,
    user_info_field: &Field,
    actor_of: impl FnOnce(&str) -> Actor,
) -> Result<LoggedIn, ApiError> {
    let keys = &app.rt.keys;
    let blind = keys.blind(OPENID_SCOPE, openid);
    let mut existed = true;
    let id = match keys.owner(OPENID_SCOPE, blind).await? {
        Some(owner) => user_of_subject(&owner)
            .ok_or_else(|| ApiError::internal("an openid reserved by a non-user"))?,
        None => {
            // Read only for a new user (the profile of one who exists is theirs to edit).
            let (name, avatar) = user_info(user_info_field)?;
            let id = next_id(app, "campus_user_id_seq").await?;
            let subject = user_subject(id);
            let key = keys.create(&subject).await?;
            let command = UserCommand::Register {
                user_id: id,
                openid: keys.seal_unique_with(&subject, &key, OPENID_SCOPE, openid),
                name: seal(&subject, &key, name.as_deref().unwrap_or(DEFAULT_NAME)),
                avatar: avatar.as_deref().map(|a| seal(&subject, &key, a)),
            };
            match app
                .users
                .execute(&id.to_string(), command, &actor_of(&subject))
                .await
            {
                Ok(_) => {
                    existed = false;
                    id
                }
                // The same account registered meanwhile (a racing login): theirs it is.
                Err(CommandError::Duplicate) => keys
                    .owner(OPENID_SCOPE, blind)
                    .await?
                    .as_deref()
                    .and_then(user_of_subject)
                    .ok_or_else(|| ApiError::busy("Please try again."))?,
                Err(e) => return Err(command_failed(e)),
            }
        }
    };
    let profile = read::profile(&app.rt.pool, id as i64)
        .await?
        .ok_or_else(|| ApiError::busy("Your account is being set up; please try again."))?;
    Ok(LoggedIn {
        id,
        existed,
        profile,
    })
}

fn status_body(status: StatusCode, code: i32, msg: &str) -> ApiError {
    ApiError::Body(status, json!({"status": code, "msg": msg}))
}

/// A command of user `id` on their own stream: if the stream is gone, they were erased and
/// their token outlived them.
async fn as_themself(
    app: &Campus,
    me: &Caller,
    id: u64,
    command: UserCommand,
) -> Result<(), ApiError> {
    app.users
        .execute(&id.to_string(), command, &me.actor)
        .await
        .map_err(|e| match e {
            CommandError::Rejected(UserError::Unknown) => invalid_token(),
            e => command_failed(e),
        })?;
    Ok(())
}

fn must_be_user(caller: &Caller) -> Result<u64, ApiError> {
    caller.user().ok_or_else(forbidden)
}

/// A user asks for a code mailed to the address they verify (through the outbox, after the
/// answer): a 6-digit code from the operating system's CSPRNG, sealed in the event.
pub async fn send_verification(
    app: &Campus,
    me: &Caller,
    body: &SendVerifyBody,
) -> Result<(), ApiError> {
    let id = must_be_user(me)?;
    let email = body
        .email
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
    let key = key_of(app, id).await?;
    let command = UserCommand::IssueCode {
        email: seal(&subject, &key, email.as_str()),
        code: seal(&subject, &key, &code),
        at: chrono::Utc::now(),
    };
    as_themself(app, me, id, command).await
}

/// A user tries a mailed code: the address becomes their email when it is right.
pub async fn verify(app: &Campus, me: &Caller, body: &VerifyBody) -> Result<(), ApiError> {
    let me_id = must_be_user(me)?;
    let mut fields = Fields::default();
    let code = fields.text(&body.verify_code, "verifyCode", true, 32, true);
    let email = fields.text(&body.email, "email", true, 254, true);
    let id = fields.id(&body.id, "id");
    fields.check()?;
    let (Some(code), Some(email), Some((id, _))) = (code, email, id) else {
        return Err(ApiError::internal("checked fields missing"));
    };
    if id != me_id as i64 {
        return Err(forbidden());
    }
    let invalid = || status_body(StatusCode::BAD_REQUEST, 1, "Invalid Code");
    let email = EmailAddress::parse(&email).map_err(|_| invalid())?;
    let subject = user_subject(me_id);
    let key = key_of(app, me_id).await?;
    let command = UserCommand::TryCode {
        email: seal(&subject, &key, email.as_str()),
        code: seal(&subject, &key, code.trim()),
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
            Ok(())
        }
        Ok(_) | Err(CommandError::Rejected(UserError::NoCode)) => Err(invalid()),
        Err(CommandError::Rejected(UserError::Unknown)) => Err(invalid_token()),
        Err(e) => Err(command_failed(e)),
    }
}

/// User `id` (the caller themself) changes their name and signature; what was committed, as
/// (name, signature).
pub async fn edit_profile(
    app: &Campus,
    me: &Caller,
    id: i64,
    body: &ProfileBody,
) -> Result<(String, Option<String>), ApiError> {
    // Only the user themself (whom the token check has just found): anyone else learns whether
    // the user exists, as the document's 404 says.
    if me.user() != Some(id as u64) {
        return Err(if read::user_exists(&app.rt.pool, id).await? {
            forbidden()
        } else {
            ApiError::not_found()
        });
    }
    let mut fields = Fields::default();
    let name = fields.text(&body.name, "name", true, MAX_NAME, true);
    let sign = fields.text(&body.sign, "sign", false, MAX_TEXT, false);
    fields.check()?;
    let name = name.ok_or_else(|| ApiError::internal("checked name missing"))?;
    let subject = user_subject(id as u64);
    let key = key_of(app, id as u64).await?;
    let command = UserCommand::EditProfile {
        name: seal(&subject, &key, &name),
        sign: sign.as_deref().map(|s| seal(&subject, &key, s)),
    };
    as_themself(app, me, id as u64, command).await?;
    Ok((name, sign))
}

/// Delete user `id` (the user themself or a superuser): their key is destroyed, and their
/// pending applications are withdrawn in the background (the sweeper finishes what a dying
/// process leaves).
pub async fn delete(app: &std::sync::Arc<Campus>, me: &Caller, id: i64) -> Result<(), ApiError> {
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
                invalid_token()
            }
            CommandError::Rejected(UserError::Unknown) => ApiError::not_found(),
            e => command_failed(e),
        })?;
    // In the background (the answer does not wait for it), on a task a hung-up client cannot
    // stop.
    let campus = app.clone();
    tokio::spawn(async move { super::organizations::withdraw_orphaned(&campus, Some(id)).await });
    Ok(())
}

/// `person` follows `org` (`person` must be the caller, unless a superuser): (follow id,
/// organisation, person).
pub async fn follow(
    app: &Campus,
    me: &Caller,
    body: &OrgPersonBody,
) -> Result<(u64, i64, i64), ApiError> {
    let (org, _, person, follow_id) = org_and_person(
        app,
        &body.org,
        &body.person,
        "campus_follow_id_seq",
        |person| me.is_or_superuser(person),
    )
    .await?;
    let command = UserCommand::Follow {
        follow_id,
        organization_id: org as u64,
    };
    match app
        .users
        .execute(&person.to_string(), command, &me.actor)
        .await
    {
        Ok(_) => Ok((follow_id, org, person)),
        Err(CommandError::Rejected(UserError::AlreadyFollowing)) => Err(ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["已关注该组织。"]}),
        )),
        Err(CommandError::Rejected(UserError::Unknown)) | Err(CommandError::Gone)
            if me.is_superuser() =>
        {
            Err(field_error("person", &invalid_pk(&person.to_string())))
        }
        Err(CommandError::Rejected(UserError::Unknown)) => Err(invalid_token()),
        Err(e) => Err(command_failed(e)),
    }
}

/// `user` stops following `org` (`user` must be the caller, unless a superuser); nothing to
/// stop is no error.
pub async fn unfollow(app: &Campus, me: &Caller, user: i64, org: i64) -> Result<(), ApiError> {
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
    Ok(())
}

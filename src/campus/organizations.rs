//! Applications to found organisations, their approval, and organisations: edits, ownership,
//! managers, deletion. Every command runs on the organisation's stream (the application's
//! number), where the owner and the managers are decided, so approval founds the
//! organisation with its owner and first manager in one event, and an ownership transfer and
//! an owner's command cannot race past each other.

use std::sync::Arc;

use aggregates::campus::catalog::Unique;
use aggregates::campus::organizations::{
    application_owner, Caller as DomainCaller, OrganizationCommand, OrganizationError,
    OrganizationEvent, ORG_NAME_SCOPE,
};
use aggregates::campus::users::user_subject;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{forbidden, Caller};
use super::common::{
    command_failed, envelope, envelope_error, field_error, invalid_pk, next_id, Fields, Page,
    Query, MAX_NAME, MAX_TEXT, MAX_URL,
};
use super::read::{self, org_json, ORG_JOINS};
use super::Campus;
use crate::http::{parse_id, ApiError, Input, Segment};
use runtime::bus::{Actor, CommandError};

type AppState = State<Arc<Campus>>;

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(submit, applications))
        .routes(routes!(delete_application))
        .routes(routes!(decide))
        .routes(routes!(organizations))
        .routes(routes!(edit, delete))
        .routes(routes!(transfer))
        .routes(routes!(appoint, dismiss, managers_envelope))
        .routes(routes!(managers_of))
}

const NAME_TAKEN_BY_ORG: &str = "已经存在该名称的组织。";
const NAME_TAKEN_BY_APPLICATION: &str = "已经存在该名称组织的申请";
const NAME_TAKEN_ON_EDIT: &str = "具有 组织名称 的 organization 已存在。";

/// Who holds an organisation name: None, or whether it is a founded organisation.
async fn name_holder(app: &Campus, unique: &Unique) -> Result<Option<(i64, bool)>, ApiError> {
    let Some(owner) = app.rt.keys.owner(ORG_NAME_SCOPE, unique.blind).await? else {
        return Ok(None);
    };
    let application: i64 = owner
        .strip_prefix("campus-application:")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ApiError::internal("an organisation name held by a stranger"))?;
    let founded: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM campus_organizations WHERE application_id = $1)",
    )
    .bind(application)
    .fetch_one(&app.rt.pool)
    .await?;
    Ok(Some((application, founded)))
}

/// A change refused because a person it names was erased meanwhile: `field` names them,
/// unless it was the caller who was erased (then their token is dead: 401).
async fn named_gone(app: &Campus, me: &Caller, user: i64, field: &str) -> ApiError {
    if let Some(caller) = me.user() {
        if matches!(
            app.rt.keys.key(&user_subject(caller)).await,
            Err(runtime::personal::KeyError::Forgotten)
        ) {
            return super::auth::invalid_token();
        }
    }
    match field {
        "detail" => ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"detail": ["申请人已注销。"]}),
        ),
        field => field_error(field, &invalid_pk(&user.to_string())),
    }
}

fn org_error(e: CommandError<OrganizationError>) -> ApiError {
    match e {
        CommandError::Rejected(OrganizationError::Unknown) => ApiError::not_found(),
        CommandError::Rejected(OrganizationError::Forbidden) => forbidden(),
        CommandError::Rejected(OrganizationError::AlreadyDecided) => ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"detail": ["该组织申请已审批。"]}),
        ),
        CommandError::Rejected(OrganizationError::AlreadyManager) => ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["该用户已是此组织管理员。"]}),
        ),
        CommandError::Rejected(OrganizationError::OwnerStays) => ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"non_field_errors": ["组织负责人必须是管理员。"]}),
        ),
        e => command_failed(e),
    }
}

// ---- applications ---------------------------------------------------------------------------

#[utoipa::path(post, path = "/organizations/applications", tag = "campus",
    summary = "Apply to found an organisation (`user` must be the caller, unless a superuser)",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 202, description = "Submitted", body = Object, example = json!({"id": 4, "name": "test组织", "description": "我的申请理由", "pub_time": "2021-04-15T11:26:32.396852", "status": 0, "user": 7, "block": 1})),
        (status = 400, description = "Fields missing or blank, the name taken by an organisation or a pending application", body = Object, example = json!({"name": ["已经存在该名称的组织。"]})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "`user` is someone else", body = Object),
    ))]
async fn submit(State(app): AppState, me: Caller, input: Input) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let name = fields.text(&input, "name", true, MAX_NAME, true);
    let description = fields.text(&input, "description", true, MAX_TEXT, false);
    let user = fields.id(&input, "user");
    let block = fields.id(&input, "block");
    if let Some((user, _)) = &user {
        me.is_or_superuser(*user)?;
    }
    if let Some((user, raw)) = &user {
        if !read::user_exists(&app.rt.pool, *user).await? {
            fields.add("user", invalid_pk(raw));
        }
    }
    if let Some((block, raw)) = &block {
        if !super::catalog::block_exists(&app, *block).await? {
            fields.add("block", invalid_pk(raw));
        }
    }
    let unique = name.as_ref().map(|n| Unique {
        value: n.clone(),
        blind: app.rt.keys.blind_name(ORG_NAME_SCOPE, n),
    });
    if let Some(unique) = &unique {
        match name_holder(&app, unique).await? {
            Some((_, true)) => fields.add("name", NAME_TAKEN_BY_ORG),
            Some((_, false)) => fields.add("name", NAME_TAKEN_BY_APPLICATION),
            None => {}
        }
    }
    fields.check()?;
    let (Some(unique), Some(description), Some((user, _)), Some((block, _))) =
        (unique, description, user, block)
    else {
        return Err(ApiError::internal("checked fields missing"));
    };
    let subject = user_subject(user as u64);
    let key = match app.rt.keys.key(&subject).await {
        Ok(key) => key,
        // The applicant was erased meanwhile (the caller, or the user a superuser applies for).
        Err(runtime::personal::KeyError::Forgotten) => {
            return Err(named_gone(&app, &me, user, "user").await)
        }
        Err(e) => return Err(e.into()),
    };
    let id = next_id(&app, "campus_application_id_seq").await?;
    let at = chrono::Utc::now();
    let command = OrganizationCommand::Submit {
        application_id: id,
        name: unique.clone(),
        description: runtime::personal::seal(&subject, &key, &description),
        applicant: user as u64,
        block: block as u64,
        at,
    };
    match app
        .organizations
        .execute(&id.to_string(), command, &me.actor)
        .await
    {
        Ok(_) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "id": id,
                "name": unique.value,
                "description": description,
                "pub_time": super::local_time(&app, at),
                "status": 0,
                "user": user,
                "block": block,
            })),
        )
            .into_response()),
        Err(CommandError::Duplicate) => {
            let message = match name_holder(&app, &unique).await? {
                Some((_, true)) => NAME_TAKEN_BY_ORG,
                _ => NAME_TAKEN_BY_APPLICATION,
            };
            Err(field_error("name", message))
        }
        Err(CommandError::Gone) if !block_held(&app, block).await? => {
            Err(field_error("block", &invalid_pk(&block.to_string())))
        }
        Err(CommandError::Gone) => Err(named_gone(&app, &me, user, "user").await),
        Err(e) => Err(org_error(e)),
    }
}

#[utoipa::path(get, path = "/organizations/applications", tag = "campus",
    summary = "Every application (superusers)",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "The applications, users and blocks nested", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Not a superuser", body = Object),
    ))]
async fn applications(State(app): AppState, me: Caller, page: Page) -> Result<Response, ApiError> {
    me.superuser()?;
    let list = read::list(
        &app,
        me.viewer(),
        &page,
        &read::Listing::applications(),
        &[],
    )
    .await?;
    Ok(Json(list).into_response())
}

fn block_deleted() -> ApiError {
    ApiError::Body(
        StatusCode::BAD_REQUEST,
        json!({"detail": ["该申请的版块已删除。"]}),
    )
}

/// Whether block `id` still holds its name: the truth as committed (a deletion frees it in
/// the statement that records it), whatever the read models say yet.
async fn block_held(app: &Campus, id: i64) -> Result<bool, ApiError> {
    use aggregates::campus::catalog::{entry_owner, Blocks};
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM reservations WHERE owner = $1)")
            .bind(entry_owner::<Blocks>(id as u64))
            .fetch_one(&app.rt.pool)
            .await?,
    )
}

async fn application_block(app: &Campus, id: i64) -> Result<i64, ApiError> {
    Ok(
        sqlx::query_scalar("SELECT block_id FROM campus_applications WHERE id = $1")
            .bind(id)
            .fetch_one(&app.rt.pool)
            .await?,
    )
}

async fn application_applicant(app: &Campus, id: i64) -> Result<Option<i64>, ApiError> {
    Ok(
        sqlx::query_scalar("SELECT user_id FROM campus_applications WHERE id = $1 AND NOT deleted")
            .bind(id)
            .fetch_optional(&app.rt.pool)
            .await?,
    )
}

#[utoipa::path(delete, path = "/organizations/applications/{id}", tag = "campus",
    summary = "Delete an application (its applicant or a superuser); a pending one is withdrawn",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Neither the applicant nor a superuser", body = Object),
        (status = 404, description = "No such application", body = Object),
    ))]
async fn delete_application(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    if application_applicant(&app, id).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let command = OrganizationCommand::DeleteApplication { by: me.domain() };
    app.organizations
        .execute(&id.to_string(), command, &me.actor)
        .await
        .map_err(org_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Withdraw the pending applications of deleted users (`of`: of that one only; at most 1,000
/// a call, taken from every deleted user in turn, so one user's backlog delays nobody else's),
/// freeing their names. Run in the background after each deletion, and by the
/// campus sweeper (`runtime::worker`) every half minute, so that a deletion whose process died
/// right after its commit is completed all the same. Returns how many were withdrawn.
pub async fn withdraw_orphaned(app: &Campus, of: Option<i64>) -> usize {
    let pending: Vec<i64> = match sqlx::query_scalar(
        "SELECT a.id FROM campus_applications a JOIN campus_users u ON u.id = a.user_id \
         WHERE u.deleted AND a.status = 0 AND NOT a.deleted AND ($1::bigint IS NULL OR a.user_id = $1) \
         ORDER BY row_number() OVER (PARTITION BY a.user_id ORDER BY a.id), a.id LIMIT 1000",
    )
    .bind(of)
    .fetch_all(&app.rt.pool)
    .await
    {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "could not list deleted users' applications");
            return 0;
        }
    };
    let actor = Actor {
        kind: "system",
        name: "campus-sweeper".into(),
        ..Actor::operator()
    };
    let mut withdrawn = 0;
    for id in pending {
        let command = OrganizationCommand::DeleteApplication {
            by: DomainCaller::Superuser,
        };
        match app
            .organizations
            .execute(&id.to_string(), command, &actor)
            .await
        {
            Ok(_) => withdrawn += 1,
            Err(CommandError::Rejected(_)) => {}
            Err(e) => {
                tracing::warn!(application = id, error = %e, "could not withdraw a deleted user's application")
            }
        }
    }
    withdrawn
}

#[utoipa::path(put, path = "/organizations/applications/verifications/{id}", tag = "campus",
    summary = "Approve (status 1) or refuse (status 2) an application (superusers)",
    description = "Approval founds the organisation with the applicant as owner and first manager, in one event.",
    security(("jwt" = [])), params(("id" = i64, Path)),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Decided", body = Object, example = json!({"status": 1})),
        (status = 400, description = "Decided already, or not a valid status", body = Object, example = json!({"detail": ["该组织申请已审批。"]})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Not a superuser", body = Object),
        (status = 404, description = "No such application", body = Object),
    ))]
async fn decide(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    input: Input,
) -> Result<Response, ApiError> {
    me.superuser()?;
    let id = parse_id(&id)?;
    let status = match input.0.get("status") {
        None | Some(Value::Null) => return Err(field_error("status", super::common::REQUIRED)),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(other) => other.to_string(),
    };
    let approve = match status.as_str() {
        "1" => true,
        "2" => false,
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(field_error("status", &format!("“{shown}” 不是合法选项。")));
        }
    };
    let Some(applicant) = application_applicant(&app, id).await? else {
        return Err(ApiError::not_found());
    };
    // A block deleted since the application was made founds nothing in it.
    let block = application_block(&app, id).await?;
    if approve && !super::catalog::block_exists(&app, block).await? {
        return Err(block_deleted());
    }
    // An application outlives its applicant only until the sweeper withdraws it.
    if approve && !read::user_exists(&app.rt.pool, applicant).await? {
        return Err(ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"detail": ["申请人已注销。"]}),
        ));
    }
    let (organization_id, appointment_id) = if approve {
        (
            next_id(&app, "campus_organization_id_seq").await?,
            next_id(&app, "campus_appointment_id_seq").await?,
        )
    } else {
        (0, 0)
    };
    let command = OrganizationCommand::Decide {
        approve,
        organization_id,
        appointment_id,
        at: chrono::Utc::now(),
    };
    match app
        .organizations
        .execute(&id.to_string(), command, &me.actor)
        .await
    {
        Ok(_) => Ok(Json(json!({"status": if approve { 1 } else { 2 }})).into_response()),
        Err(CommandError::Gone) if !block_held(&app, block).await? => Err(block_deleted()),
        Err(CommandError::Gone) => Err(named_gone(&app, &me, applicant, "detail").await),
        Err(e) => Err(org_error(e)),
    }
}

// ---- organisations --------------------------------------------------------------------------

#[utoipa::path(get, path = "/organizations", tag = "campus",
    summary = "Every organisation, or with ?org=NAME one, in the envelope",
    security(("jwt" = [])),
    params(("org" = Option<String>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "The envelope; `status: 1` for an unknown name", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        (status = 401, description = "Not logged in", body = Object),
    ))]
async fn organizations(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Response, ApiError> {
    if let Some(name) = query.get("org") {
        let found = read::one(
            &app.rt.pool,
            &format!(
                "SELECT {} FROM campus_organizations o {ORG_JOINS} WHERE o.name = $3",
                org_json()
            ),
            me.viewer(),
            app.rt.config.tz.name(),
            name.trim(),
        )
        .await?;
        return Ok(Json(match found {
            Some(org) => envelope(org),
            None => envelope_error("invalid org name"),
        })
        .into_response());
    }
    let list = read::list(
        &app,
        me.viewer(),
        &page,
        &read::Listing::organizations(),
        &[],
    )
    .await?;
    Ok(Json(envelope(list)).into_response())
}

/// Organisation `id`'s stream, or 404.
async fn stream_of(app: &Campus, id: &str) -> Result<(i64, String), ApiError> {
    let id = parse_id(id)?;
    let stream = read::org_stream(&app.rt.pool, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok((id, stream.to_string()))
}

async fn org_answer(app: &Campus, me: &Caller, id: i64) -> Result<Value, ApiError> {
    read::one(
        &app.rt.pool,
        &format!(
            "SELECT {} FROM campus_organizations o {ORG_JOINS} WHERE o.id = $3",
            org_json()
        ),
        me.viewer(),
        app.rt.config.tz.name(),
        id,
    )
    .await?
    .ok_or_else(ApiError::not_found)
}

#[utoipa::path(put, path = "/organizations/{id}", tag = "campus",
    summary = "Edit an organisation (its owner or a superuser)",
    security(("jwt" = [])), params(("id" = i64, Path)),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The organisation as changed", body = Object),
        (status = 400, description = "Name missing, blank or taken", body = Object, example = json!({"name": ["具有 组织名称 的 organization 已存在。"]})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Neither the owner nor a superuser", body = Object),
        (status = 404, description = "No such organisation", body = Object),
    ))]
async fn edit(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    input: Input,
) -> Result<Response, ApiError> {
    let (id, stream) = stream_of(&app, &id).await?;
    let mut fields = Fields::default();
    let name = fields.text(&input, "name", true, MAX_NAME, true);
    // Left out: kept (as DRF does); null or blank: cleared.
    let cleared = |field: &str| matches!(input.0.get(field), Some(Value::Null));
    let description = fields
        .text(&input, "description", false, MAX_TEXT, false)
        .or_else(|| cleared("description").then(String::new));
    let avatar = fields
        .url(&input, "avatar", MAX_URL)
        .or_else(|| cleared("avatar").then(String::new));
    fields.check()?;
    let name = name.unwrap_or_default();
    let unique = Unique {
        blind: app.rt.keys.blind_name(ORG_NAME_SCOPE, &name),
        value: name,
    };
    let own = application_owner(stream.parse().unwrap_or_default());
    let taken = app.rt.keys.owner(ORG_NAME_SCOPE, unique.blind).await?;
    if taken.is_some_and(|holder| holder != own) {
        return Err(field_error("name", NAME_TAKEN_ON_EDIT));
    }
    let command = OrganizationCommand::Edit {
        by: me.domain(),
        name: unique,
        description,
        avatar,
    };
    match app.organizations.execute(&stream, command, &me.actor).await {
        Ok(committed) => {
            // What was committed, whether or not the read model holds it yet.
            let mut answer = org_answer(&app, &me, id).await?;
            for event in committed.events {
                if let OrganizationEvent::OrganizationEdited {
                    name,
                    description,
                    avatar,
                    ..
                } = event
                {
                    answer["name"] = json!(name);
                    answer["description"] = json!(description);
                    answer["avatar"] = json!(avatar);
                }
            }
            // The answer names the owner (another person when a superuser edits).
            Ok(crate::http::naming_others(Json(answer)))
        }
        Err(CommandError::Duplicate) => Err(field_error("name", NAME_TAKEN_ON_EDIT)),
        Err(e) => Err(org_error(e)),
    }
}

#[utoipa::path(delete, path = "/organizations/{id}", tag = "campus",
    summary = "Delete an organisation (its owner or a superuser): its follows and managers go with it",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Neither the owner nor a superuser", body = Object),
        (status = 404, description = "No such organisation", body = Object),
    ))]
async fn delete(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Response, ApiError> {
    let (_, stream) = stream_of(&app, &id).await?;
    let command = OrganizationCommand::Delete { by: me.domain() };
    app.organizations
        .execute(&stream, command, &me.actor)
        .await
        .map_err(org_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/organizations/owner/{id}", tag = "campus",
    summary = "Hand an organisation to another user (its owner or a superuser); the new owner becomes a manager",
    security(("jwt" = [])), params(("id" = i64, Path)),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Handed over", body = Object, example = json!({"owner": 6})),
        (status = 400, description = "`owner` missing or no such user", body = Object, example = json!({"owner": ["该字段是必填项。"]})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Neither the owner nor a superuser", body = Object),
        (status = 404, description = "No such organisation", body = Object),
    ))]
async fn transfer(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    input: Input,
) -> Result<Response, ApiError> {
    let (_, stream) = stream_of(&app, &id).await?;
    let mut fields = Fields::default();
    let owner = fields.id(&input, "owner");
    if let Some((owner, raw)) = &owner {
        if !read::user_exists(&app.rt.pool, *owner).await? {
            fields.add("owner", invalid_pk(raw));
        }
    }
    fields.check()?;
    let (owner, _) = owner.ok_or_else(|| ApiError::internal("checked owner missing"))?;
    let command = OrganizationCommand::TransferOwnership {
        by: me.domain(),
        to: owner as u64,
        appointment_id: next_id(&app, "campus_appointment_id_seq").await?,
    };
    match app.organizations.execute(&stream, command, &me.actor).await {
        Ok(_) => Ok(Json(json!({"owner": owner})).into_response()),
        Err(CommandError::Gone) => Err(named_gone(&app, &me, owner, "owner").await),
        Err(e) => Err(org_error(e)),
    }
}

// ---- managers -------------------------------------------------------------------------------

#[utoipa::path(post, path = "/organizations/managers", tag = "campus",
    summary = "Appoint a manager (the organisation's owner or a superuser)",
    security(("jwt" = [])),
    request_body(content((Object = "application/json"), (Object = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Appointed", body = Object, example = json!({"id": 1, "org": 3, "person": 5})),
        (status = 400, description = "No such organisation or user, or a manager already", body = Object, example = json!({"non_field_errors": ["该用户已是此组织管理员。"]})),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Neither the owner nor a superuser", body = Object),
    ))]
async fn appoint(State(app): AppState, me: Caller, input: Input) -> Result<Response, ApiError> {
    // Who may appoint is the organisation's to decide (its owner or a superuser).
    let (org, stream, person) = super::common::org_and_person(&app, &input, |_| Ok(())).await?;
    let appointment_id = next_id(&app, "campus_appointment_id_seq").await?;
    let command = OrganizationCommand::AppointManager {
        by: me.domain(),
        user: person as u64,
        appointment_id,
    };
    let appointed = app
        .organizations
        .execute(&stream.to_string(), command, &me.actor)
        .await;
    match appointed {
        Ok(_) => {}
        Err(CommandError::Rejected(OrganizationError::Unknown)) => {
            return Err(field_error("org", &invalid_pk(&org.to_string())))
        }
        Err(CommandError::Gone) => return Err(named_gone(&app, &me, person, "person").await),
        Err(e) => return Err(org_error(e)),
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": appointment_id, "org": org, "person": person})),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/organizations/managers", tag = "campus",
    summary = "Dismiss a manager (?user=&org=; the organisation's owner or a superuser)",
    security(("jwt" = [])),
    params(("user" = i64, Query), ("org" = i64, Query)),
    responses(
        (status = 204, description = "Not a manager (any more)"),
        (status = 400, description = "A parameter missing, or the owner (who stays a manager)", body = Object),
        (status = 401, description = "Not logged in", body = Object),
        (status = 403, description = "Neither the owner nor a superuser", body = Object),
    ))]
async fn dismiss(State(app): AppState, me: Caller, query: Query) -> Result<Response, ApiError> {
    let (user, org) = super::users::pair(&query)?;
    let Some(stream) = read::org_stream(&app.rt.pool, org).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let command = OrganizationCommand::DismissManager {
        by: me.domain(),
        user: user as u64,
    };
    match app
        .organizations
        .execute(&stream.to_string(), command, &me.actor)
        .await
    {
        Ok(_) | Err(CommandError::Rejected(OrganizationError::Unknown)) => {
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => Err(org_error(e)),
    }
}

#[utoipa::path(get, path = "/organizations/managers", tag = "campus",
    summary = "The managers of an organisation (?org=NAME), or of all, in the envelope",
    security(("jwt" = [])),
    params(("org" = Option<String>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "The envelope of `{org, person}`; `status: 1` for an unknown name", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        (status = 401, description = "Not logged in", body = Object),
    ))]
async fn managers_envelope(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Response, ApiError> {
    let list = match query.get("org") {
        Some(name) => {
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM campus_organizations WHERE name = $1")
                    .bind(name.trim())
                    .fetch_optional(&app.rt.pool)
                    .await?;
            let Some(id) = id else {
                return Ok(Json(envelope_error("invalid org name")).into_response());
            };
            read::list(
                &app,
                me.viewer(),
                &page,
                &read::Listing::managers_of_named(),
                &[id],
            )
            .await?
        }
        None => {
            read::list(
                &app,
                me.viewer(),
                &page,
                &read::Listing::all_managers(),
                &[],
            )
            .await?
        }
    };
    Ok(Json(envelope(list)).into_response())
}

#[utoipa::path(get, path = "/organizations/managers/{id}", tag = "campus",
    summary = "The managers of organisation `id`",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses(
        (status = 200, description = "`[{person}]`; `[]` for an unknown organisation", body = serde_json::Value),
        (status = 401, description = "Not logged in", body = Object),
    ))]
async fn managers_of(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    page: Page,
) -> Result<Response, ApiError> {
    let listing = read::Listing::persons_managing();
    Ok(Json(read::list_of(&app, me.viewer(), &page, &listing, &id).await?).into_response())
}

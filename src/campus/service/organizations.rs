//! Applications to found organisations, their approval, and organisations: edits, ownership,
//! managers, deletion. Every command runs on the organisation's stream (the application's
//! number), where the owner and the managers are decided, so approval founds the
//! organisation with its owner and first manager in one event, and an ownership transfer and
//! an owner's command cannot race past each other.

use aggregates::campus::catalog::{entry_owner, Blocks, Unique};
use aggregates::campus::organizations::{
    application_owner, Caller as DomainCaller, OrganizationCommand, OrganizationError,
    OrganizationEvent, ORG_NAME_SCOPE,
};
use aggregates::campus::users::user_subject;
use axum::http::StatusCode;
use projections::campus::read;
use runtime::bus::{Actor, CommandError};
use runtime::personal::KeyError;
use serde_json::{json, Value};

use super::catalog::block_exists;
use super::{command_failed, named_gone, next_id, org_and_person};
use crate::campus::auth::{forbidden, Caller};
use crate::campus::body::{
    ApplicationBody, OrgPersonBody, OrganizationBody, OwnerBody, VerdictBody,
};
use crate::campus::context::Campus;
use crate::campus::fields::{
    field_error, invalid_pk, Fields, MAX_NAME, MAX_TEXT, MAX_URL, REQUIRED,
};
use crate::http::ApiError;

const NAME_TAKEN_BY_ORG: &str = "已经存在该名称的组织。";
const NAME_TAKEN_BY_APPLICATION: &str = "已经存在该名称组织的申请";
pub const NAME_TAKEN_ON_EDIT: &str = "具有 组织名称 的 organization 已存在。";

/// Who holds an organisation name: None, or whether it is a founded organisation.
async fn name_holder(app: &Campus, unique: &Unique) -> Result<Option<(i64, bool)>, ApiError> {
    let Some(owner) = app.rt.keys.owner(ORG_NAME_SCOPE, unique.blind).await? else {
        return Ok(None);
    };
    let application: i64 = owner
        .strip_prefix("campus-application:")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ApiError::internal("an organisation name held by a stranger"))?;
    let founded = read::application_founded(&app.rt.pool, application).await?;
    Ok(Some((application, founded)))
}

/// The document's answers to the organisations' refusals.
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

fn block_deleted() -> ApiError {
    ApiError::Body(
        StatusCode::BAD_REQUEST,
        json!({"detail": ["该申请的版块已删除。"]}),
    )
}

/// Whether block `id` still holds its name: the truth as committed (a deletion frees it in
/// the statement that records it), whatever the read models say yet.
async fn block_held(app: &Campus, id: i64) -> Result<bool, ApiError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT FROM reservations WHERE owner = $1)")
            .bind(entry_owner::<Blocks>(id as u64))
            .fetch_one(&app.rt.pool)
            .await?,
    )
}

/// An application as submitted: `{id, name, description, pub_time, status, user, block}`.
pub async fn submit(app: &Campus, me: &Caller, body: &ApplicationBody) -> Result<Value, ApiError> {
    let mut fields = Fields::default();
    let name = fields.text(&body.name, "name", true, MAX_NAME, true);
    let description = fields.text(&body.description, "description", true, MAX_TEXT, false);
    let user = fields.id(&body.user, "user");
    let block = fields.id(&body.block, "block");
    if let Some((user, _)) = &user {
        me.is_or_superuser(*user)?;
    }
    if let Some((user, raw)) = &user {
        if !read::user_exists(&app.rt.pool, *user).await? {
            fields.add("user", invalid_pk(raw));
        }
    }
    if let Some((block, raw)) = &block {
        if !block_exists(app, *block).await? {
            fields.add("block", invalid_pk(raw));
        }
    }
    let unique = name.as_ref().map(|n| Unique {
        value: n.clone(),
        blind: app.rt.keys.blind_name(ORG_NAME_SCOPE, n),
    });
    if let Some(unique) = &unique {
        match name_holder(app, unique).await? {
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
        Err(KeyError::Forgotten) => return Err(named_gone(app, me, user, "user").await),
        Err(e) => return Err(e.into()),
    };
    let id = next_id(app, "campus_application_id_seq").await?;
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
        Ok(_) => Ok(json!({
            "id": id,
            "name": unique.value,
            "description": description,
            "pub_time": crate::campus::context::local_time(app, at),
            "status": 0,
            "user": user,
            "block": block,
        })),
        Err(CommandError::Duplicate) => {
            let message = match name_holder(app, &unique).await? {
                Some((_, true)) => NAME_TAKEN_BY_ORG,
                _ => NAME_TAKEN_BY_APPLICATION,
            };
            Err(field_error("name", message))
        }
        Err(CommandError::Gone) if !block_held(app, block).await? => {
            Err(field_error("block", &invalid_pk(&block.to_string())))
        }
        Err(CommandError::Gone) => Err(named_gone(app, me, user, "user").await),
        Err(e) => Err(org_error(e)),
    }
}

/// Delete application `id` (its applicant or a superuser); a pending one is withdrawn.
pub async fn delete_application(app: &Campus, me: &Caller, id: i64) -> Result<(), ApiError> {
    if read::application_applicant(&app.rt.pool, id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found());
    }
    let command = OrganizationCommand::DeleteApplication { by: me.domain() };
    app.organizations
        .execute(&id.to_string(), command, &me.actor)
        .await
        .map_err(org_error)?;
    Ok(())
}

/// Withdraw the pending applications of deleted users (`of`: of that one only; at most 1,000
/// a call, taken from every deleted user in turn, so one user's backlog delays nobody else's),
/// freeing their names. Run in the background after each deletion, and by the campus sweeper
/// (registered with the runtime's workers) every half minute, so that a deletion whose process
/// died right after its commit is completed all the same. Returns how many were withdrawn.
pub async fn withdraw_orphaned(app: &Campus, of: Option<i64>) -> usize {
    let pending = match read::orphaned_applications(&app.rt.pool, of).await {
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

/// A superuser approves (status 1: founds the organisation, with the applicant as owner and
/// first manager, in one event) or refuses (status 2) application `id`: the status.
pub async fn decide(
    app: &Campus,
    me: &Caller,
    id: i64,
    body: &VerdictBody,
) -> Result<i64, ApiError> {
    me.superuser()?;
    let status = match body.status.value() {
        None | Some(Value::Null) => return Err(field_error("status", REQUIRED)),
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
    let Some(applicant) = read::application_applicant(&app.rt.pool, id).await? else {
        return Err(ApiError::not_found());
    };
    // A block deleted since the application was made founds nothing in it.
    let block = read::application_block(&app.rt.pool, id).await?;
    if approve && !block_exists(app, block).await? {
        return Err(block_deleted());
    }
    // An application outlives its applicant only until the sweeper withdraws it.
    if approve && !read::user_exists(&app.rt.pool, applicant).await? {
        return Err(ApiError::Body(
            StatusCode::BAD_REQUEST,
            json!({"detail": ["申请人已注销。"]}),
        ));
    }
    let (organization_id, appointment_id, description) = if approve {
        (
            next_id(app, "campus_organization_id_seq").await?,
            next_id(app, "campus_appointment_id_seq").await?,
            // The organisation's first description is the application's reason.
            read::application_description(&app.rt.pool, id).await?,
        )
    } else {
        (0, 0, None)
    };
    let command = OrganizationCommand::Decide {
        approve,
        organization_id,
        appointment_id,
        description,
        at: chrono::Utc::now(),
    };
    match app
        .organizations
        .execute(&id.to_string(), command, &me.actor)
        .await
    {
        Ok(_) => Ok(if approve { 1 } else { 2 }),
        Err(CommandError::Gone) if !block_held(app, block).await? => Err(block_deleted()),
        Err(CommandError::Gone) => Err(named_gone(app, me, applicant, "detail").await),
        Err(e) => Err(org_error(e)),
    }
}

/// Organisation `id`'s stream, or 404.
pub async fn stream_of(app: &Campus, id: i64) -> Result<String, ApiError> {
    let stream = read::org_stream(&app.rt.pool, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(stream.to_string())
}

/// What an edit committed: (name, description, avatar).
pub type Edited = (String, Option<String>, Option<String>);

/// Edit organisation `id` (its owner or a superuser): a field left out keeps its value, null
/// or blank clears it. What was committed (None when nothing changed).
pub async fn edit(
    app: &Campus,
    me: &Caller,
    id: i64,
    body: &OrganizationBody,
) -> Result<Option<Edited>, ApiError> {
    let stream = stream_of(app, id).await?;
    let mut fields = Fields::default();
    let name = fields.text(&body.name, "name", true, MAX_NAME, true);
    // Left out: kept (as DRF does); null or blank: cleared.
    let cleared = |field: &crate::http::Field| matches!(field.value(), Some(Value::Null));
    let description = fields
        .text(&body.description, "description", false, MAX_TEXT, false)
        .or_else(|| cleared(&body.description).then(String::new));
    let avatar = fields
        .url(&body.avatar, "avatar", MAX_URL)
        .or_else(|| cleared(&body.avatar).then(String::new));
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
        Ok(committed) => Ok(committed.events.into_iter().find_map(|event| match event {
            OrganizationEvent::OrganizationEdited {
                name,
                description,
                avatar,
                ..
            } => Some((name, description, avatar)),
            _ => None,
        })),
        Err(CommandError::Duplicate) => Err(field_error("name", NAME_TAKEN_ON_EDIT)),
        Err(e) => Err(org_error(e)),
    }
}

/// Delete organisation `id` (its owner or a superuser): its follows and managers go with it.
pub async fn delete(app: &Campus, me: &Caller, id: i64) -> Result<(), ApiError> {
    let stream = stream_of(app, id).await?;
    let command = OrganizationCommand::Delete { by: me.domain() };
    app.organizations
        .execute(&stream, command, &me.actor)
        .await
        .map_err(org_error)?;
    Ok(())
}

/// Hand organisation `id` to another user (its owner or a superuser); the new owner becomes a
/// manager. The new owner.
pub async fn transfer(
    app: &Campus,
    me: &Caller,
    id: i64,
    body: &OwnerBody,
) -> Result<i64, ApiError> {
    let stream = stream_of(app, id).await?;
    let mut fields = Fields::default();
    let owner = fields.id(&body.owner, "owner");
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
        appointment_id: next_id(app, "campus_appointment_id_seq").await?,
    };
    match app.organizations.execute(&stream, command, &me.actor).await {
        Ok(_) => Ok(owner),
        Err(CommandError::Gone) => Err(named_gone(app, me, owner, "owner").await),
        Err(e) => Err(org_error(e)),
    }
}

/// Appoint `person` a manager of `org` (its owner or a superuser): (appointment id, org,
/// person).
pub async fn appoint(
    app: &Campus,
    me: &Caller,
    body: &OrgPersonBody,
) -> Result<(u64, i64, i64), ApiError> {
    let (org, stream, person, appointment_id) = org_and_person(
        app,
        &body.org,
        &body.person,
        "campus_appointment_id_seq",
        |_| Ok(()),
    )
    .await?;
    let command = OrganizationCommand::AppointManager {
        by: me.domain(),
        user: person as u64,
        appointment_id,
    };
    match app
        .organizations
        .execute(&stream.to_string(), command, &me.actor)
        .await
    {
        Ok(_) => Ok((appointment_id, org, person)),
        Err(CommandError::Rejected(OrganizationError::Unknown)) => {
            Err(field_error("org", &invalid_pk(&org.to_string())))
        }
        Err(CommandError::Gone) => Err(named_gone(app, me, person, "person").await),
        Err(e) => Err(org_error(e)),
    }
}

/// Dismiss manager `user` of `org` (its owner or a superuser; the owner stays a manager);
/// nothing to dismiss is no error.
pub async fn dismiss(app: &Campus, me: &Caller, user: i64, org: i64) -> Result<(), ApiError> {
    let Some(stream) = read::org_stream(&app.rt.pool, org).await? else {
        return Ok(());
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
        Ok(_) | Err(CommandError::Rejected(OrganizationError::Unknown)) => Ok(()),
        Err(e) => Err(org_error(e)),
    }
}

/// How often the campus sweeper looks for work.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// The campus's background work, registered with the runtime's workers: a deleted user's
/// pending applications withdrawn when the request or process that deleted them died after
/// the commit (idempotent; usually finds nothing).
pub fn sweeper(campus: std::sync::Arc<Campus>) -> runtime::worker::Periodic {
    runtime::worker::Periodic {
        name: "campus-sweeper",
        every: SWEEP_EVERY,
        round: std::sync::Arc::new(move || {
            let campus = campus.clone();
            Box::pin(async move {
                withdraw_orphaned(&campus, None).await;
            })
        }),
    }
}

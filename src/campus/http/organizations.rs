//! Organisations: `organizations/applications/...`, `organizations/...`,
//! `organizations/owner/<id>`, `organizations/managers/...`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use projections::campus::read::{self, Listing};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{list, list_of, one};
use crate::campus::auth::{Caller, Permitted, SignedIn};
use crate::campus::body::{
    ApplicationBody, DetailNotFound, OrgPersonBody, OrganizationBody, OwnerBody, VerdictBody,
};
use crate::campus::context::Campus;
use crate::campus::fields::{envelope, envelope_error, pair, Page, Query};
use crate::campus::service::organizations;
use crate::http::answers::{BadRetryKey, ReadAnswers, RetryKey, Throttled, WriteAnswers};
use crate::http::{kept, naming_others, parse_id, ApiError, Body, Segment};

type AppState = State<Arc<Campus>>;

pub fn routes() -> OpenApiRouter<Arc<Campus>> {
    OpenApiRouter::new()
        .routes(routes!(submit, applications))
        .routes(routes!(application, delete_application))
        .routes(routes!(decide))
        .routes(routes!(all_organizations))
        .routes(routes!(organization, edit, delete))
        .routes(routes!(transfer))
        .routes(routes!(appoint, dismiss, managers_envelope))
        .routes(routes!(managers_of))
}

// ---- applications ---------------------------------------------------------------------------

#[utoipa::path(post, path = "/organizations/applications", tag = "campus",
    summary = "Apply to found an organisation (`user` must be the caller, unless a superuser)",
    security(("jwt" = [])), params(RetryKey),
    request_body(content((ApplicationBody = "application/json"), (ApplicationBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 202, description = "Submitted", body = Object, example = json!({"id": 4, "name": "test组织", "description": "我的申请理由", "pub_time": "2021-04-15T11:26:32.396852", "status": 0, "user": 7, "block": 1})),
        (status = 400, description = "Fields missing or blank, the name taken by an organisation or a pending application", body = Object, example = json!({"name": ["已经存在该名称的组织。"]})),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn submit(
    State(app): AppState,
    me: Caller,
    Body(body): Body<ApplicationBody>,
) -> Result<Response, ApiError> {
    let application = organizations::submit(&app, &me, &body).await?;
    let answer = (StatusCode::ACCEPTED, Json(application));
    // A superuser applies on a user's behalf: the answer (kept for retries) names that user.
    Ok(if me.is_superuser() {
        naming_others(answer)
    } else {
        answer.into_response()
    })
}

#[utoipa::path(get, path = "/organizations/applications", tag = "campus",
    summary = "Every application (superusers)",
    security(("jwt" = [])),
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "The applications, users and blocks nested", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        Permitted, ReadAnswers,
    ))]
async fn applications(
    State(app): AppState,
    me: Caller,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    me.superuser()?;
    Ok(Json(
        list(&app, &me, &page, &Listing::applications(), &[]).await?,
    ))
}

#[utoipa::path(get, path = "/organizations/applications/{id}", tag = "campus",
    summary = "One application (superusers), as in the list",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The application, its user and block nested", body = Object),
        (status = 404, description = "No such application", body = DetailNotFound),
        Permitted, ReadAnswers,
    ))]
async fn application(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Json<Value>, ApiError> {
    me.superuser()?;
    let id = parse_id(&id)?;
    Ok(Json(
        one(&app, &me, &Listing::application_by_id(), id)
            .await?
            .ok_or_else(ApiError::not_found)?,
    ))
}

#[utoipa::path(delete, path = "/organizations/applications/{id}", tag = "campus",
    summary = "Delete an application (its applicant or a superuser); a pending one is withdrawn",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such application", body = DetailNotFound),
        Permitted, Throttled, BadRetryKey, WriteAnswers,
    ))]
async fn delete_application(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    organizations::delete_application(&app, &me, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/organizations/applications/verifications/{id}", tag = "campus",
    summary = "Approve (status 1) or refuse (status 2) an application (superusers)",
    description = "Approval founds the organisation with the applicant as owner and first manager, and the application's reason as its description, in one event.",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    request_body(content((VerdictBody = "application/json"), (VerdictBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Decided", body = Object, example = json!({"status": 1})),
        (status = 400, description = "Decided already, or not a valid status", body = Object, example = json!({"detail": ["该组织申请已审批。"]})),
        (status = 404, description = "No such application", body = DetailNotFound),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn decide(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    Body(body): Body<VerdictBody>,
) -> Result<Json<Value>, ApiError> {
    let status = organizations::decide(&app, &me, parse_id(&id)?, &body).await?;
    Ok(Json(json!({ "status": status })))
}

// ---- organisations --------------------------------------------------------------------------

#[utoipa::path(get, path = "/organizations", tag = "campus",
    summary = "Every organisation, or with ?org=NAME one, in the envelope",
    security(("jwt" = [])),
    params(("org" = Option<String>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "The envelope; `status: 1` for an unknown name", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        SignedIn, ReadAnswers,
    ))]
async fn all_organizations(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Response, ApiError> {
    // The answer depends on who asks (who may see account ids) and the whole query.
    let question = app.rt.answers.question(
        "/organizations",
        me.viewer().to_string(),
        page.asked(),
        app.rt.clock.today(),
        me.at,
    );
    kept::json(&app.rt, question, async {
        if let Some(name) = query.get("org") {
            let found = one(&app, &me, &Listing::organization_by_name(), name.trim()).await?;
            return Ok(match found {
                Some(org) => envelope(org),
                None => envelope_error("invalid org name"),
            });
        }
        let found = list(&app, &me, &page, &Listing::organizations(), &[]).await?;
        Ok(envelope(found))
    })
    .await
}

async fn org_answer(app: &Campus, me: &Caller, id: i64) -> Result<Value, ApiError> {
    one(app, me, &Listing::organization_by_id(), id)
        .await?
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/organizations/{id}", tag = "campus",
    summary = "One organisation",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses(
        (status = 200, description = "The organisation, its owner and block nested", body = Object),
        (status = 404, description = "No such organisation", body = DetailNotFound),
        SignedIn, ReadAnswers,
    ))]
async fn organization(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(org_answer(&app, &me, parse_id(&id)?).await?))
}

#[utoipa::path(put, path = "/organizations/{id}", tag = "campus",
    summary = "Edit an organisation (its owner or a superuser)",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    request_body(content((OrganizationBody = "application/json"), (OrganizationBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "The organisation as changed", body = Object),
        (status = 400, description = "Name missing, blank or taken, or an avatar that is not an http(s) URL", body = Object, example = json!({"name": ["具有 组织名称 的 organization 已存在。"]})),
        (status = 404, description = "No such organisation", body = DetailNotFound),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn edit(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    Body(body): Body<OrganizationBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let edited = organizations::edit(&app, &me, id, &body).await?;
    // What was committed, whether or not the read model holds it yet.
    let mut answer = org_answer(&app, &me, id).await?;
    if let Some((name, description, avatar)) = edited {
        answer["name"] = json!(name);
        answer["description"] = json!(description);
        answer["avatar"] = json!(avatar);
    }
    // The answer names the owner (another person when a superuser edits).
    Ok(naming_others(Json(answer)))
}

#[utoipa::path(delete, path = "/organizations/{id}", tag = "campus",
    summary = "Delete an organisation (its owner or a superuser): its follows and managers go with it",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such organisation", body = DetailNotFound),
        Permitted, Throttled, BadRetryKey, WriteAnswers,
    ))]
async fn delete(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
) -> Result<StatusCode, ApiError> {
    organizations::delete(&app, &me, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/organizations/owner/{id}", tag = "campus",
    summary = "Hand an organisation to another user (its owner or a superuser); the new owner becomes a manager",
    security(("jwt" = [])), params(("id" = i64, Path), RetryKey),
    request_body(content((OwnerBody = "application/json"), (OwnerBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 200, description = "Handed over", body = Object, example = json!({"owner": 6})),
        (status = 400, description = "`owner` missing or no such user", body = Object, example = json!({"owner": ["该字段是必填项。"]})),
        (status = 404, description = "No such organisation", body = DetailNotFound),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn transfer(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    Body(body): Body<OwnerBody>,
) -> Result<Json<Value>, ApiError> {
    let owner = organizations::transfer(&app, &me, parse_id(&id)?, &body).await?;
    Ok(Json(json!({ "owner": owner })))
}

// ---- managers -------------------------------------------------------------------------------

#[utoipa::path(post, path = "/organizations/managers", tag = "campus",
    summary = "Appoint a manager (the organisation's owner or a superuser)",
    security(("jwt" = [])), params(RetryKey),
    request_body(content((OrgPersonBody = "application/json"), (OrgPersonBody = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Appointed", body = Object, example = json!({"id": 1, "org": 3, "person": 5})),
        (status = 400, description = "No such organisation or user, or a manager already", body = Object, example = json!({"non_field_errors": ["该用户已是此组织管理员。"]})),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn appoint(
    State(app): AppState,
    me: Caller,
    Body(body): Body<OrgPersonBody>,
) -> Result<Response, ApiError> {
    let (id, org, person) = organizations::appoint(&app, &me, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "org": org, "person": person})),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/organizations/managers", tag = "campus",
    summary = "Dismiss a manager (?user=&org=; the organisation's owner or a superuser)",
    security(("jwt" = [])),
    params(("user" = i64, Query), ("org" = i64, Query), RetryKey),
    responses(
        (status = 204, description = "Not a manager (any more)"),
        (status = 400, description = "A parameter missing, or the owner (who stays a manager)", body = Object),
        Permitted, Throttled, WriteAnswers,
    ))]
async fn dismiss(State(app): AppState, me: Caller, query: Query) -> Result<StatusCode, ApiError> {
    let (user, org) = pair(&query)?;
    organizations::dismiss(&app, &me, user, org).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/organizations/managers", tag = "campus",
    summary = "The managers of an organisation (?org=NAME), or of all, in the envelope",
    security(("jwt" = [])),
    params(("org" = Option<String>, Query), ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query)),
    responses(
        (status = 200, description = "The envelope of `{org, person}`; `status: 1` for an unknown name", body = serde_json::Value),
        (status = 400, description = "`limit` or `offset` is not a non-negative integer, or a query parameter holds NUL", body = Object),
        SignedIn, ReadAnswers,
    ))]
async fn managers_envelope(
    State(app): AppState,
    me: Caller,
    query: Query,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    let found = match query.get("org") {
        Some(name) => {
            let Some(id) = read::organization_named(&app.rt.pool, name.trim()).await? else {
                return Ok(Json(envelope_error("invalid org name")));
            };
            list(&app, &me, &page, &Listing::managers_of_named(), &[id]).await?
        }
        None => list(&app, &me, &page, &Listing::all_managers(), &[]).await?,
    };
    Ok(Json(envelope(found)))
}

#[utoipa::path(get, path = "/organizations/managers/{id}", tag = "campus",
    summary = "The managers of organisation `id`",
    security(("jwt" = [])), params(("id" = i64, Path)),
    responses(
        (status = 200, description = "`[{person}]`; `[]` for an unknown organisation", body = serde_json::Value),
        SignedIn, ReadAnswers,
    ))]
async fn managers_of(
    State(app): AppState,
    me: Caller,
    Segment(id): Segment,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    let listing = Listing::persons_managing();
    Ok(Json(list_of(&app, &me, &page, &listing, &id).await?))
}

//! The time machine: any GET of either service answered as it stood at a past moment, for the
//! caller it was (`GET /audit/views/`, `ensemble views at`).
//!
//! The log up to the moment is replayed into a schema of its own by the projections' own code
//! (`runtime::views`), and the endpoint's own handler answers from it: the same router, the
//! same extractors and queries, on a runtime whose pool sees only that replay and whose
//! "today" is the moment's. The caller is who the question names (a token issued for them as
//! the read models knew them then), so a member who did not exist yet gets the 401 they would
//! have got.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use tower::{Layer, ServiceExt};
use tower_http::normalize_path::NormalizePathLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::campus::{self, CurrentSuperuser};
use crate::http::ApiError;
use crate::orchestra;
use runtime::views::{Cut, ViewError};

/// The public routes of a process, given its [`App`] (the top floor's assembly).
pub type Services = fn(&Arc<App>) -> Router;

/// What the time machine's route runs on.
pub struct Views {
    pub app: Arc<App>,
    pub services: Services,
}

/// A question: which GET, as of when, as whom, on which "today".
#[derive(Debug, Clone)]
pub struct Question {
    /// The path with its own query, as a client sent it.
    pub path: String,
    pub as_of: AsOf,
    /// `orchestra-member:17`, `campus-user:7`, `campus-superuser:<id>`; None: a manager (the
    /// orchestra) or a superuser (the campus).
    pub subject: Option<String>,
    pub today: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy)]
pub enum AsOf {
    Time(DateTime<Utc>),
    Position(i64),
}

impl AsOf {
    /// What `/audit/` takes (RFC 3339, `YYYY-MM-DD HH:MM:SS` UTC, a date: its end), or
    /// `position:N`.
    pub fn parse(text: &str) -> Result<Self, String> {
        use chrono::Datelike;
        if let Some(n) = text.strip_prefix("position:") {
            return match n.trim().parse::<i64>() {
                Ok(n) if n > 0 => Ok(Self::Position(n)),
                _ => Err(format!(
                    "{text:?}: position:N takes a positive whole number"
                )),
            };
        }
        let time = runtime::audit::parse_time(text)?;
        if !(1..=9999).contains(&time.year()) {
            return Err("as_of must be between the years 1 and 9999".into());
        }
        Ok(Self::Time(time))
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Moment {
    /// The last event in the replayed log (0: none yet).
    pub position: i64,
    /// The moment asked about (for `position:N`, when that event was recorded).
    pub time: String,
}

/// The endpoint's answer then.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"as_of": {"position": 41, "time": "2026-03-11T20:00:00Z"}, "today": "2026-03-11", "status": 200, "body": {"date": "2026-03-12", "absent": []}}))]
pub struct Answer {
    pub as_of: Moment,
    pub today: String,
    /// The status the endpoint answered (or would have).
    pub status: u16,
    /// Its body, exactly as the endpoint wrote it (JSON; null when it had none).
    #[schema(value_type = Object)]
    pub body: Box<serde_json::value::RawValue>,
}

/// Why a question has no answer.
#[derive(Debug)]
pub enum Refused {
    /// A bad question (400, with the reason).
    Bad(String),
    /// Not now (503 with `Retry-After`).
    Later(String, u64),
    Failed(ApiError),
}

impl From<ViewError> for Refused {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::NoSuchPosition(_) | ViewError::Future => Self::Bad(e.to_string()),
            ViewError::Busy => Self::Later(e.to_string(), 5),
            ViewError::Unsettled | ViewError::Erased => Self::Later(e.to_string(), 1),
            ViewError::Database(e) => Self::Failed(e.into()),
            e => Self::Failed(ApiError::internal(e)),
        }
    }
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Self {
        Self::Failed(e.into())
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bad(reason) | Self::Later(reason, _) => f.write_str(reason),
            Self::Failed(e) => write!(f, "{e:?}"),
        }
    }
}

/// Paths that are not views of the services: the auditors' own tools, health, the docs.
const NOT_VIEWS: &[&str] = &[
    "audit",
    "console",
    "metrics",
    "healthz",
    "readyz",
    "docs",
    "openapi.json",
];

/// Answer `question`, as `auditor` (a superuser's id, the default caller of campus paths)
/// asks it. `services` builds the routes the answer comes from.
pub async fn answer(
    app: &Arc<App>,
    services: Services,
    question: &Question,
    auditor: Option<&str>,
) -> Result<Answer, Refused> {
    let (uri, on_campus, subject) = target(question)?;
    let replays = &app.rt.views;
    let cut: Cut = match question.as_of {
        AsOf::Time(time) => replays.cut_at(time).await?,
        AsOf::Position(n) => replays.cut_at_position(n).await?,
    };
    let config = &app.rt.config;
    let today = question
        .today
        .or(config.today)
        .unwrap_or_else(|| cut.time.with_timezone(&config.tz).date_naive());
    let view = replays.view(cut.at).await?;
    // The same services, reading the replay, with that day's date.
    let then = App::on(Arc::new(app.rt.viewing(&view, today)));
    let (status, body) = ask(&then, services, uri, on_campus, subject, auditor).await?;
    Ok(Answer {
        as_of: Moment {
            position: cut.at.position,
            time: cut
                .time
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        },
        today: today.to_string(),
        status,
        body,
    })
}

/// [`answer`] within a request's deadline (less 2 s to send it): a replay that takes longer
/// goes on, for the next ask, and this answers "later".
pub async fn answer_in_time(
    app: &Arc<App>,
    services: Services,
    question: &Question,
    auditor: Option<&str>,
) -> Result<Answer, Refused> {
    let deadline = app
        .rt
        .config
        .http
        .request_timeout
        .saturating_sub(std::time::Duration::from_secs(2));
    tokio::time::timeout(deadline, answer(app, services, question, auditor))
        .await
        .unwrap_or_else(|_| {
            Err(Refused::Later(
                "the moment is still being replayed; ask again in a few seconds".into(),
                5,
            ))
        })
}

/// The same question asked of the live read models, now (its `as_of` and `today` aside): what
/// the console shows beside the answer then.
pub async fn answer_now(
    app: &Arc<App>,
    services: Services,
    question: &Question,
    auditor: Option<&str>,
) -> Result<(u16, Box<serde_json::value::RawValue>), Refused> {
    let (uri, on_campus, subject) = target(question)?;
    ask(app, services, uri, on_campus, subject, auditor).await
}

/// The path a question names, whether it is the campus's, and whose answer it asks for.
fn target(question: &Question) -> Result<(axum::http::Uri, bool, Option<Subject>), Refused> {
    let uri: axum::http::Uri = question
        .path
        .parse()
        .ok()
        .filter(|u: &axum::http::Uri| {
            u.scheme().is_none() && u.path().starts_with('/') && question.path.len() <= 2000
        })
        .ok_or_else(|| Refused::Bad("path must be a path such as /manager/next/".into()))?;
    let first = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    if NOT_VIEWS.contains(&first) {
        return Err(Refused::Bad(format!(
            "{} is not an endpoint of the orchestra or the campus",
            uri.path()
        )));
    }
    let on_campus = campus::owns(uri.path());
    let subject = question
        .subject
        .as_deref()
        .map(|s| Subject::parse(s, on_campus))
        .transpose()
        .map_err(Refused::Bad)?;
    Ok((uri, on_campus, subject))
}

/// GET `uri` of `app`'s services as `subject` (or the default caller) would: the status and
/// the body as written.
async fn ask(
    app: &Arc<App>,
    services: Services,
    uri: axum::http::Uri,
    on_campus: bool,
    subject: Option<Subject>,
    auditor: Option<&str>,
) -> Result<(u16, Box<serde_json::value::RawValue>), Refused> {
    let token = match subject {
        Some(Subject::Member(id)) => orchestra::token_as(&app.orchestra, Some(id)).await?,
        None if !on_campus => orchestra::token_as(&app.orchestra, None).await?,
        Some(Subject::User(id)) => campus::token_as(&app.campus, campus::As::User(id)).await?,
        Some(Subject::Superuser(id)) => {
            campus::token_as(&app.campus, campus::As::Superuser(id)).await?
        }
        None => campus::superuser_token_then(&app.campus, auditor).await?,
    };
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("JWT {token}"));
    }
    let request = request
        .body(Body::empty())
        .map_err(|e| Refused::Bad(e.to_string()))?;
    let router = NormalizePathLayer::trim_trailing_slash().layer(services(app));
    let response = router
        .oneshot(request)
        .await
        .map_err(|e| Refused::Failed(ApiError::internal(e)))?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
        .await
        .map_err(|e| Refused::Failed(ApiError::internal(e)))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = if text.trim().is_empty() {
        serde_json::value::RawValue::from_string("null".into())
    } else {
        serde_json::value::RawValue::from_string(text.clone())
            .or_else(|_| serde_json::value::to_raw_value(&text))
    }
    .map_err(|e| Refused::Failed(ApiError::internal(e)))?;
    Ok((status, body))
}

/// Whose answer: a subject as the log names people.
enum Subject {
    Member(i64),
    User(u64),
    Superuser(String),
}

impl Subject {
    fn parse(text: &str, on_campus: bool) -> Result<Self, String> {
        let bad = || {
            format!(
                "as must name someone of the service the path belongs to \
                 ({}), not {text:?}",
                if on_campus {
                    "campus-user:ID or campus-superuser:ID"
                } else {
                    "orchestra-member:ID"
                }
            )
        };
        let (kind, id) = text.split_once(':').ok_or_else(bad)?;
        match (kind, on_campus) {
            ("orchestra-member", false) => id.parse().map(Self::Member).map_err(|_| bad()),
            ("campus-user", true) => id.parse().map(Self::User).map_err(|_| bad()),
            ("campus-superuser", true)
                if !id.is_empty() && id.len() <= 64 && !id.contains('\0') =>
            {
                Ok(Self::Superuser(id.to_string()))
            }
            _ => Err(bad()),
        }
    }
}

// ---- HTTP ---------------------------------------------------------------------------------

pub fn routes() -> OpenApiRouter<Arc<Views>> {
    OpenApiRouter::new().routes(routes!(views))
}

#[utoipa::path(get, path = "/audit/views", tag = "audit",
    summary = "Any GET of either service, answered as it stood at a past moment (superusers)",
    description = "The log up to `as_of` is replayed into a copy of the read models (kept for the next question about that moment), and the endpoint answers from it for the caller named by `as`. Events recorded at or before the moment are in; a transaction still under way then is not. People erased since appear as the read models show erased people today.",
    security(("jwt" = [])),
    params(
        ("path" = String, Query, description = "The GET path with its own query (URL-encoded), e.g. `/manager/next/`"),
        ("as_of" = String, Query, description = "RFC 3339, `YYYY-MM-DD HH:MM:SS` (UTC), a date (its end), or `position:N`"),
        ("as" = Option<String>, Query, description = "Whose answer: `orchestra-member:ID`, `campus-user:ID`, `campus-superuser:ID` (default: a manager, or the asking superuser)"),
        ("today" = Option<String>, Query, description = "`YYYY-MM-DD`: \"today\" of date-relative endpoints (default: the moment's date in ENSEMBLE_TZ, or ENSEMBLE_TODAY)"),
    ),
    responses(
        (status = 200, description = "The endpoint's status and body then", body = Answer),
        (status = 400, description = "A bad question, with the reason", body = crate::campus::body::Detail),
        crate::campus::Permitted,
        (status = 503, description = "Another moment is being replayed, or the replay is still running: ask again after `Retry-After` seconds", body = crate::campus::body::Detail),
    ))]
async fn views(
    State(views): State<Arc<Views>>,
    mut parts: Parts,
    RawQuery(raw): RawQuery,
) -> Response {
    let run = async {
        let me = <CurrentSuperuser as axum::extract::FromRequestParts<Arc<campus::Campus>>>::from_request_parts(
            &mut parts,
            &views.app.campus,
        )
        .await
        .map_err(Refused::Failed)?;
        let question = question(raw.as_deref()).map_err(Refused::Bad)?;
        answer_in_time(&views.app, views.services, &question, Some(&me.id)).await
    };
    match run.await {
        Ok(answer) => Json(answer).into_response(),
        Err(Refused::Bad(reason)) => {
            ApiError::detail(StatusCode::BAD_REQUEST, reason).into_response()
        }
        Err(Refused::Later(reason, seconds)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, seconds.to_string())],
            Json(json!({ "detail": reason })),
        )
            .into_response(),
        Err(Refused::Failed(e)) => e.into_response(),
    }
}

pub fn question(raw: Option<&str>) -> Result<Question, String> {
    let params: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(raw.unwrap_or(""))
            .map_err(|_| "the query string is malformed")?;
    if params.values().any(|v| v.contains('\0') || v.len() > 2000) {
        return Err("a parameter holds a NUL character or is too long".into());
    }
    let path = params.get("path").ok_or("path is required")?.clone();
    let as_of = AsOf::parse(params.get("as_of").ok_or("as_of is required")?)?;
    let today = params
        .get("today")
        .map(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| format!("today: {d:?} is not a date YYYY-MM-DD"))
        })
        .transpose()?;
    Ok(Question {
        path,
        as_of,
        subject: params.get("as").cloned(),
        today,
    })
}

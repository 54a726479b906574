//! The console: what auditors and operators do with the CLI and the `/audit/` endpoints, as
//! pages in a browser at `/console/`, for campus superusers. The history of the log, a
//! record's timeline with what changed at each step, what a user saw at a past moment beside
//! what they see now, the hash chain with a verify that runs in the background, and the
//! projections, the mail outbox and rebuilds.
//!
//! Server-rendered HTML (maud: templates are Rust, checked and escaped at compile time), with
//! one small script of our own that refreshes the parts that move (a job's progress, the lag
//! chart) by fetching fragments; the style sheet and the script are embedded in the binary, and
//! a Content-Security-Policy allows nothing else. Pages read through the same functions as the
//! CLI and `/audit/` (`runtime::audit`, `crate::views`). Routes are described in the OpenAPI
//! document like every other.

mod audit;
mod diff;
mod jobs;
mod ops;
mod pages;
mod session;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::views::Services;
use runtime::limits::LimitError;
use session::Session;

/// What the console's routes run on.
pub struct Console {
    pub app: Arc<App>,
    /// The routes the time machine asks.
    pub services: Services,
    jobs: jobs::Jobs,
    lags: jobs::LagSamples,
}

impl Console {
    /// The console of `app`; its lag sampler runs as long as the console lives.
    pub fn new(app: Arc<App>, services: Services) -> Arc<Self> {
        let console = Arc::new(Self {
            app: app.clone(),
            services,
            jobs: jobs::Jobs::default(),
            lags: jobs::LagSamples::default(),
        });
        jobs::LagSamples::follow(Arc::downgrade(&console), |c| &c.lags, app.rt.clone());
        console
    }
}

pub fn routes() -> OpenApiRouter<Arc<Console>> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .routes(routes!(log_in))
        .routes(routes!(log_out))
        .routes(routes!(asset))
        .merge(audit::routes())
        .merge(ops::routes())
}

/// What every answer under `/console` carries (its 404s too: this wraps the whole router):
/// no script, style or connection from anywhere but the console itself, no inline script, no
/// framing, no referrer to other sites, no caching of pages.
pub async fn secured(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path();
    let console = path == "/console" || path.starts_with("/console/");
    let mut response = next.run(request).await;
    if !console {
        return response;
    }
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A form posted from another site is refused before anything reads it (the login too: no
/// one is logged in to a console by someone else's page). Browsers send `Origin` with every
/// POST; it must name this host (as the client or a proxy in front saw it). Requests without
/// one (curl, scripts) are left to the session and CSRF checks.
pub async fn same_origin(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() == axum::http::Method::POST {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let host = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
            let theirs = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, rest)| rest);
            let ours = [host("host"), host("x-forwarded-host")];
            if theirs.is_none() || !ours.contains(&theirs) {
                return (
                    StatusCode::FORBIDDEN,
                    "A form from another site is refused: use the console's own pages.",
                )
                    .into_response();
            }
        }
    }
    next.run(request).await
}

/// A form as the browser sent it (`application/x-www-form-urlencoded`), field by field.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match axum::Form::<Vec<(String, String)>>::from_request(request, state).await {
            Ok(axum::Form(pairs)) if pairs.iter().all(|(_, v)| !v.contains('\0')) => {
                Ok(Self(pairs))
            }
            _ => Err((
                StatusCode::BAD_REQUEST,
                "The form could not be read: send it from the console's own page.",
            )
                .into_response()),
        }
    }
}

/// A login form, as the document shows it.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"username": "jessica", "password": "change-me-please"}))]
#[allow(dead_code)] // described, never built: the handler reads the fields itself
struct LoginForm {
    username: String,
    password: String,
}

/// A state-changing form: its CSRF token (in every page's forms).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"csrf": "2fde37b68a9287c6f4b81b65cd97d838"}))]
#[allow(dead_code)]
struct CsrfForm {
    csrf: String,
}

#[utoipa::path(get, path = "/console", tag = "console",
    summary = "The console: the login form, or (signed in) the history",
    responses(
        (status = 200, description = "The login form (HTML)", content_type = "text/html", body = String),
        (status = 303, description = "Signed in: to /console/history"),
        crate::http::answers::ReadAnswers,
    ))]
async fn index(session: Result<Session, Response>) -> Response {
    match session {
        Ok(_) => Redirect::to("/console/history").into_response(),
        Err(_) => pages::login(StatusCode::OK, None).into_response(),
    }
}

#[utoipa::path(post, path = "/console/login", tag = "console",
    summary = "A superuser opens a console session (the adminLogIn/ password and limits)",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: an HttpOnly, SameSite=Strict session cookie on /console, to /console/history"),
        (status = 401, description = "Unknown name, wrong password or disabled: the form again (HTML)", content_type = "text/html", body = String),
        (status = 429, description = "Too many attempts (as adminLogIn/, counted together): the form with Retry-After", content_type = "text/html", body = String),
        crate::http::answers::WriteAnswers,
    ))]
async fn log_in(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    form: Fields,
) -> Response {
    let campus = &console.app.campus;
    let username = form.get("username").unwrap_or_default().to_string();
    let password = form.get("password").unwrap_or_default().to_string();
    let limits = &console.app.rt.limits;
    let attempt = match limits
        .login_attempt(
            &console.app.rt.keys,
            crate::http::client_address(&extensions),
            "admin-login-name",
            Some(&username),
        )
        .await
    {
        Ok(attempt) => attempt,
        Err(LimitError::Limited(limited)) => {
            let mut response =
                pages::login(StatusCode::TOO_MANY_REQUESTS, Some(&limited.message)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(limited.retry_after));
            return response;
        }
        Err(LimitError::Database(e)) => return crate::http::ApiError::from(e).into_response(),
    };
    match crate::campus::service::superusers::log_in(campus, &username, password).await {
        Ok(Some((id, _))) => {
            limits.login_cleared(&attempt).await;
            let cookie = session::open(&console, &id, &headers);
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to("/console/history"),
            )
                .into_response()
        }
        Ok(None) => {
            limits.login_failed(&attempt).await;
            pages::login(
                StatusCode::UNAUTHORIZED,
                Some("Unknown username, wrong password, or a disabled superuser."),
            )
            .into_response()
        }
        Err(e) => {
            limits.login_cleared(&attempt).await;
            e.into_response()
        }
    }
}

#[utoipa::path(post, path = "/console/logout", tag = "console",
    summary = "End the console session",
    request_body(content = CsrfForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "The session cookie cleared, to /console"),
        (status = 401, description = "No session: the login form (HTML)", content_type = "text/html", body = String),
        (status = 403, description = "The form did not carry this session's CSRF token", content_type = "text/html", body = String),
        crate::http::answers::WriteAnswers,
    ))]
async fn log_out(session: Session, headers: HeaderMap, form: Fields) -> Response {
    if !session.checks(form.get("csrf")) {
        return csrf_refused(&session, pages::Tab::History);
    }
    (
        [(header::SET_COOKIE, session::close(&headers))],
        Redirect::to("/console"),
    )
        .into_response()
}

/// 403 for a state-changing form without this session's CSRF token.
fn csrf_refused(session: &Session, tab: pages::Tab) -> Response {
    pages::problem(
        StatusCode::FORBIDDEN,
        session.frame(tab),
        "Refused",
        "This form did not come from this console session (its CSRF token is missing or \
         stale). Reload the page and try again.",
    )
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

#[utoipa::path(get, path = "/console/assets/{asset}", tag = "console",
    summary = "The console's style sheet and script, from the binary",
    params(("asset" = String, Path, description = "console.css or console.js")),
    responses(
        (status = 200, description = "The file", content_type = "text/css", body = String),
        (status = 404, description = "No such file", body = crate::http::schema::NotFound),
        crate::http::answers::ReadAnswers,
    ))]
async fn asset(file: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Response {
    let (kind, body) = match file.as_ref().map(|p| p.0.as_str()) {
        Ok("console.css") => ("text/css; charset=utf-8", CSS),
        Ok("console.js") => ("text/javascript; charset=utf-8", JS),
        _ => return crate::http::ApiError::not_found().into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}

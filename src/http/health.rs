//! Health, readiness and metrics over HTTP (`/healthz`, `/readyz`, `/metrics`), and the
//! middleware that counts every request by route template. What is counted and read lives
//! in `runtime::metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use runtime::metrics as registry;
use runtime::Runtime;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The route template a request matched, passed out on its response for [`track`].
#[derive(Clone)]
struct Route(String);

/// Route middleware (inside the router, where the match is known): hands the route template
/// to [`track`] on the response.
pub async fn mark_route(request_in: Request, next: Next) -> Response {
    let route = request_in
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut response = next.run(request_in).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Middleware around everything: one count and one latency sample per request, by route
/// template (never by the raw path: ids would make the label set unbounded; requests that
/// matched no route count as `unmatched`).
pub async fn track(request_in: Request, next: Next) -> Response {
    // Any method a client invents counts as `other`: labels stay a fixed set.
    let method = match *request_in.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request_in).await;
    let route = response
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |r| r.0.as_str())
        .to_string();
    registry::request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// `/healthz`, `/readyz` and, unless `with_metrics` is false, `/metrics`.
pub fn routes(with_metrics: bool) -> OpenApiRouter<Arc<Runtime>> {
    let router = OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz));
    if with_metrics {
        router.routes(routes!(metrics))
    } else {
        router
    }
}

#[utoipa::path(get, path = "/healthz", tag = "operations", summary = "The process is up",
    responses((status = 200, description = "Up", body = super::schema::Health)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    summary = "The database answers and every read model is within a bounded lag",
    responses(
        (status = 200, description = "Ready", body = super::schema::Readiness, example = json!({"status": "ready"})),
        (status = 503, description = "Not ready, with the reason", body = super::schema::Readiness),
    ))]
/// Ready: the database answers within 2 s and no read model is more than
/// `ENSEMBLE_READY_MAX_LAG` events behind. 503 with the reason otherwise.
async fn readyz(State(app): State<Arc<Runtime>>) -> Response {
    match readiness(&app).await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "reason": reason })),
        )
            .into_response(),
    }
}

/// Whether the process is ready (what `/readyz` answers), or why not.
pub async fn readiness(app: &Arc<Runtime>) -> Result<(), String> {
    let max = i64::from(app.config.ready_max_lag);
    match registry::lags(app, max + 1).await {
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err("the database is unavailable or did not answer in time".into())
        }
        Ok(rows) => {
            if let Some((name, _, _, lag)) = rows.iter().find(|r| r.3 > max) {
                return Err(format!(
                    "read model {name} is {lag}{} events behind the log (at most {max} allowed)",
                    if *lag > max { "+" } else { "" }
                ));
            }
            Ok(())
        }
    }
}

/// Whether a request on the public listener may read `/metrics`: only from this machine
/// (a loopback peer) and not relayed by a proxy (no forwarding header), since the metrics
/// tell a stranger how the service is used and attacked (failed logins, say).
fn from_this_machine(headers: &axum::http::HeaderMap, extensions: &axum::http::Extensions) -> bool {
    let local = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|peer| peer.0.ip().is_loopback());
    let relayed = [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "x-client-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "via",
    ]
    .iter()
    .any(|h| headers.contains_key(*h));
    local && !relayed
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics: on the public listener to this machine only (loopback, not through a proxy); on ENSEMBLE_ADMIN_LISTEN instead when that is set",
    responses(
        (status = 200, description = "The OpenMetrics text format (Prometheus scrapes it)", content_type = "application/openmetrics-text"),
        (status = 404, description = "Asked from another machine or through a proxy", body = super::schema::NotFound),
    ))]
async fn metrics(
    State(app): State<Arc<Runtime>>,
    headers: axum::http::HeaderMap,
    extensions: axum::http::Extensions,
) -> Response {
    // Without an admin listener this is the public one.
    if app.config.admin_listen.is_none() && !from_this_machine(&headers, &extensions) {
        return super::ApiError::not_found().into_response();
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        registry::render(&app).await,
    )
        .into_response()
}
